/*
 * Entry points of the mini guest.
 *
 * 1. Multiboot (v1) header with the "a.out kludge" (flag 16): QEMU's
 *    -kernel loads the flat image through fw_cfg and its multiboot option
 *    ROM, on the master only, like a bzImage; an ELF image would instead
 *    become ROM blobs that every node's QEMU copies into guest RAM at each
 *    reset.
 * 2. entry32: the BSP, in 32-bit protected mode (EBX = multiboot info).
 *    Identity-maps the first 8 MiB with 4 KiB pages, enters long mode and
 *    calls mini_main(mbi). paging.c then maps all RAM (4 KiB pages) and the
 *    local APIC.
 * 3. ap_trampoline: copied to 0x8000 (SIPI vector 0x08). An AP starts
 *    there in real mode, goes to protected mode, loads the BSP's CR3
 *    (ap_cr3), enters long mode and calls ap_main() on the stack the BSP
 *    left in ap_boot_stack.
 * 4. Interrupt stubs: vectors 0..255 push their number (and a zero error
 *    code where the CPU pushes none) and call isr_dispatch(frame).
 */
	.set MB_MAGIC, 0x1BADB002
	.set MB_FLAGS, (1 << 1) | (1 << 16)	/* memory info; load addresses below */
	.set TRAMPOLINE, 0x8000

	.section .multiboot, "a"
	.align 4
mb_header:
	.long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
	.long mb_header			/* header_addr */
	.long __image_start		/* load_addr */
	.long __data_end		/* load_end_addr */
	.long __bss_end			/* bss_end_addr */
	.long entry32			/* entry_addr */

	.section .text.boot, "ax"
	.code32
	.globl entry32
entry32:
	cli
	cld
	mov %ebx, boot_mbi
	mov %eax, boot_magic
	lgdt gdt_ptr
	ljmp $0x18, $1f			/* our 32-bit code segment */
1:	mov $0x10, %ax
	mov %ax, %ds; mov %ax, %es; mov %ax, %ss; mov %ax, %fs; mov %ax, %gs
	mov $boot_stack_top, %esp

	/* boot page tables: PML4[0] -> PDPT[0] -> PD[0..3] -> 4 page tables */
	mov $boot_pml4, %edi
	movl $boot_pdpt + 3, (%edi)
	mov $boot_pdpt, %edi
	movl $boot_pd + 3, (%edi)
	mov $boot_pd, %edi
	mov $boot_pt + 3, %eax
	mov $4, %ecx
2:	mov %eax, (%edi)
	add $4096, %eax
	add $8, %edi
	loop 2b
	mov $boot_pt, %edi		/* 2048 PTEs: 0..8 MiB, present + writable */
	mov $3, %eax
	mov $2048, %ecx
3:	mov %eax, (%edi)
	add $4096, %eax
	add $8, %edi
	loop 3b

	mov $boot_pml4, %eax
	mov %eax, %cr3
	call enter_long_mode
	ljmp $0x08, $entry64

/* PAE, EFER.LME, paging: the caller's CR3 is in place. 32-bit code. */
enter_long_mode:
	mov %cr4, %eax
	or $(1 << 5), %eax		/* PAE */
	mov %eax, %cr4
	mov $0xC0000080, %ecx		/* EFER */
	rdmsr
	or $(1 << 8), %eax		/* LME */
	wrmsr
	mov %cr0, %eax
	or $0x80000001, %eax		/* PG | PE */
	mov %eax, %cr0
	ret

	.code64
entry64:
	call load_data_segments
	mov $boot_stack_top, %rsp
	mov boot_mbi(%rip), %edi
	call mini_main
4:	cli
	hlt
	jmp 4b

/* Flat data segments for long mode (on the caller's stack, which is fine:
 * SS keeps its base 0). */
load_data_segments:
	mov $0x10, %ax
	mov %ax, %ds; mov %ax, %es; mov %ax, %ss
	xor %ax, %ax
	mov %ax, %fs; mov %ax, %gs
	ret

/* ---- the AP trampoline (copied to TRAMPOLINE) ---------------------------- */
	.code16
	.globl ap_trampoline, ap_trampoline_end
ap_trampoline:
	cli
	cld
	xor %ax, %ax
	mov %ax, %ds
	lgdtl TRAMPOLINE + (tramp_gdt_ptr - ap_trampoline)
	mov %cr0, %eax
	or $1, %eax
	mov %eax, %cr0
	ljmpl $0x18, $(TRAMPOLINE + (tramp32 - ap_trampoline))
	.code32
tramp32:
	mov $0x10, %ax
	mov %ax, %ds; mov %ax, %es; mov %ax, %ss
	mov ap_boot_stack, %esp		/* below 4 GiB: the image's bss */
	mov ap_cr3, %eax
	mov %eax, %cr3
	mov $enter_long_mode, %eax	/* absolute: this code runs from a copy */
	call *%eax
	ljmp $0x08, $ap_entry64
	.align 8
tramp_gdt_ptr:
	.word gdt_end - gdt - 1
	.long gdt
ap_trampoline_end:

	.code64
ap_entry64:
	call load_data_segments
	mov ap_boot_stack(%rip), %rsp
	mov ap_boot_index(%rip), %edi
	call ap_main
5:	cli
	hlt
	jmp 5b

/* ---- interrupt stubs --------------------------------------------------------- */
/* Frame for isr_dispatch: 9 saved registers, vector, error code, then what
 * the CPU pushed (rip, cs, rflags, rsp, ss). */
isr_common:
	push %rax; push %rcx; push %rdx; push %rsi; push %rdi
	push %r8; push %r9; push %r10; push %r11
	mov %rsp, %rdi
	mov %rsp, %rbx			/* callee-saved: realign, then restore */
	and $-16, %rsp
	call isr_dispatch
	mov %rbx, %rsp
	pop %r11; pop %r10; pop %r9; pop %r8
	pop %rdi; pop %rsi; pop %rdx; pop %rcx; pop %rax
	pop %rbx			/* the rbx saved by the stub */
	add $16, %rsp			/* vector, error code */
	iretq

/* One 16-byte stub per vector (isr_stubs + 16 * vector). Vectors 8,
 * 10-14, 17, 21, 29 and 30 come with an error code from the CPU; the
 * others push a zero in its place. */
	.align 16
	.globl isr_stubs
isr_stubs:
	vector = 0
	.rept 256
	.align 16
	.if (vector == 8) || (vector >= 10 && vector <= 14) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
	pushq $vector
	.else
	pushq $0
	pushq $vector
	.endif
	push %rbx
	jmp isr_common
	vector = vector + 1
	.endr

/* ---- data ----------------------------------------------------------------------- */
	.data
	.align 16
	.globl gdt
gdt:	.quad 0				/* 0x00 */
	.quad 0x00af9a000000ffff	/* 0x08: 64-bit code */
	.quad 0x00cf92000000ffff	/* 0x10: data */
	.quad 0x00cf9a000000ffff	/* 0x18: 32-bit code */
gdt_end:
	.align 8
gdt_ptr:
	.word gdt_end - gdt - 1
	.quad gdt
	.globl boot_mbi, boot_magic, ap_cr3, ap_boot_stack, ap_boot_index
boot_mbi:	.long 0
boot_magic:	.long 0
ap_cr3:		.long 0
ap_boot_index:	.long 0
ap_boot_stack:	.quad 0

	.section .bss.boot, "aw", @nobits
	.align 4096
boot_pml4:	.space 4096
boot_pdpt:	.space 4096
boot_pd:	.space 4096
boot_pt:	.space 4 * 4096
	.space 16384
boot_stack_top:
