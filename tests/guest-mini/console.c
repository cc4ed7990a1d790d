/*
 * Output on COM1 (port 0x3f8), the console disco gives the master. Only
 * the BSP prints in normal operation; an exception on another CPU prints
 * from there (its port accesses are forwarded to the master). printk()
 * formats into a line buffer first so one call is one burst of port
 * writes. Formats: %d %u %x (with l/ll, zero padding and width), %s, %c.
 */
#include <stdarg.h>

#include "mini.h"

#define COM1 0x3f8

void console_putc(char c)
{
	/* wait (boundedly) for the transmit holding register to be empty */
	for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
		cpu_relax();
	outb(COM1, (uint8_t)c);
}

struct out {
	char *buf;
	size_t len, pos;
};

static void put(struct out *o, char c)
{
	if (o->pos + 1 < o->len)
		o->buf[o->pos] = c;
	o->pos++;
}

static void put_num(struct out *o, uint64_t v, unsigned base, bool neg, int width, char pad)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	while (width-- > n)
		put(o, pad);
	while (n)
		put(o, tmp[--n]);
}

static int vformat(char *buf, size_t len, const char *fmt, va_list ap)
{
	struct out o = {buf, len, 0};

	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		char pad = ' ';
		int width = 0, longs = 0;

		fmt++;
		if (*fmt == '0')
			pad = '0', fmt++;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l')
			longs++, fmt++;
		switch (*fmt) {
		case 'd': {
			int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
			put_num(&o, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, v < 0, width, pad);
			break;
		}
		case 'u':
		case 'x': {
			uint64_t v = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
			put_num(&o, v, *fmt == 'u' ? 10 : 16, false, width, pad);
			break;
		}
		case 's': {
			const char *s = va_arg(ap, const char *);
			int n = (int)strlen(s ? s : "(null)");
			while (width-- > n)
				put(&o, ' ');
			for (s = s ? s : "(null)"; *s; s++)
				put(&o, *s);
			break;
		}
		case 'c':
			put(&o, (char)va_arg(ap, int));
			break;
		case '%':
			put(&o, '%');
			break;
		default:
			put(&o, '?');
			if (!*fmt)
				fmt--;
		}
	}
	if (len)
		buf[o.pos < len ? o.pos : len - 1] = '\0';
	return (int)o.pos;
}

int snprintk_va(char *buf, size_t len, const char *fmt, va_list ap)
{
	return vformat(buf, len, fmt, ap);
}

int snprintk(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vformat(buf, len, fmt, ap);
	va_end(ap);
	return n;
}

void printk(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vformat(line, sizeof(line), fmt, ap);
	va_end(ap);
	for (char *p = line; *p; p++) {
		if (*p == '\n')
			console_putc('\r');
		console_putc(*p);
	}
}
