/*
 * tiny.S: a guest of a few instructions, for tests and benchmarks that
 * need a real KVM_RUN without booting Linux (which this build machine's
 * software KVM cannot do).  Entered in 64-bit mode like a vmlinux, it
 * prints a greeting on the serial port, echoes one line of input back
 * (upper-cased, so the test sees it passed through the guest), and then
 * resets the machine through the keyboard controller, as `reboot=k` does.
 */
	.code64
	.text
	.globl _start
_start:
	lea	stack_top(%rip), %rsp	/* the boot protocol gives us no stack */
	lea	hello(%rip), %rsi
	call	puts
	/* Open the port, as a driver does: enable the receive interrupt
	 * (we poll, but that is what tells the UART someone listens). */
	mov	$0x3f9, %dx
	mov	$1, %al
	out	%al, (%dx)
	/* Echo one line: poll the line status register for data ready. */
1:	mov	$0x3fd, %dx
	in	(%dx), %al
	test	$1, %al
	jz	1b
	mov	$0x3f8, %dx
	in	(%dx), %al
	cmp	$'\n', %al		/* a pipe ends lines with \n, a raw tty with \r */
	je	2f
	cmp	$'\r', %al
	je	2f
	cmp	$'a', %al
	jb	3f
	cmp	$'z', %al
	ja	3f
	sub	$0x20, %al
3:	out	%al, (%dx)
	jmp	1b
2:	mov	$'\n', %al
	out	%al, (%dx)
	lea	bye(%rip), %rsi
	call	puts
	/* Pulse the reset line: the launcher ends with status 0. */
	mov	$0xfe, %al
	out	%al, $0x64
	hlt
	jmp	.

/* Print the NUL-terminated string at rsi on COM1. */
puts:	mov	$0x3f8, %dx
4:	lodsb
	test	%al, %al
	jz	5f
	out	%al, (%dx)
	jmp	4b
5:	ret

	.bss
	.balign	16
	.skip	4096
stack_top:

	.section .rodata
hello:	.asciz	"tiny guest: hello\n"
bye:	.asciz	"tiny guest: bye\n"
