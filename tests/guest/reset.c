// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * disco-reset: a guest reset across the whole spanning VM, checked from
 * inside the guest. Run on every boot of one VM (disco.run=reset,...):
 *
 *   first boot   the boot count in CMOS RAM is 0: set it to 1 and reset
 *                the machine (reboot(2), RESTART). Nothing after this
 *                program runs; the VM must come back and boot again.
 *   later boots  the count is n >= 1: set n + 1, print
 *                "reset: boot n+1 after a guest reset" and exit 0, so the
 *                programs after it run on the rebooted VM.
 *
 * The count lives in byte 0x7a of the RTC's CMOS RAM (an MC146818 on port
 * 0x70/0x71; a byte neither SeaBIOS nor Linux uses): QEMU zeroes CMOS RAM
 * when the VM starts, and a reset keeps it, as on real hardware. On a
 * spanning VM the RTC is a device on the master, so from a vCPU elsewhere
 * these are forwarded port accesses.
 *
 * Which CPU performs the reset is the kernel's choice: reboot=t,s1 on the
 * kernel command line makes CPU 1 triple-fault, i.e. the reset starts on
 * the node of vCPU 1. Not run on the host by ctest: it would reboot it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/reboot.h>
#include <unistd.h>

#define CMOS_INDEX 0x70
#define CMOS_DATA 0x71
#define CMOS_BOOT_COUNT 0x7a /* bit 7 of the index (NMI disable) stays clear */

static unsigned cmos_read(unsigned reg)
{
	outb((unsigned char)reg, CMOS_INDEX);
	return inb(CMOS_DATA);
}

static void cmos_write(unsigned reg, unsigned value)
{
	outb((unsigned char)reg, CMOS_INDEX);
	outb((unsigned char)value, CMOS_DATA);
}

int main(int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: disco-reset (no arguments; reboots the machine on its first run)\n");
		return 2;
	}
	if (ioperm(CMOS_INDEX, 2, 1) < 0) {
		perror("reset: ioperm(0x70, 2)");
		return 1;
	}
	unsigned count = cmos_read(CMOS_BOOT_COUNT);
	if (count >= 0xff) {
		fprintf(stderr, "reset: CMOS boot count is %u: the VM keeps resetting\n", count);
		return 1;
	}
	cmos_write(CMOS_BOOT_COUNT, count + 1);
	if (cmos_read(CMOS_BOOT_COUNT) != count + 1) {
		fprintf(stderr, "reset: CMOS byte 0x%x does not keep what was written\n", CMOS_BOOT_COUNT);
		return 1;
	}
	if (count > 0) {
		printf("reset: boot %u after a guest reset\n", count + 1);
		return 0;
	}
	printf("reset: first boot: resetting the machine\n");
	fflush(stdout);
	sync();
	reboot(RB_AUTOBOOT);
	perror("reset: reboot(RB_AUTOBOOT)");
	return 1;
}
