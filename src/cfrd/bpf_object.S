/*
 * A compiled BPF program (src/xdp/cfr_xdp.bpf.c, src/tc/cfr_tc.bpf.c),
 * linked into cfrd so the daemon and its programs cannot come from
 * different builds. Assembled once per program: BPF_OBJECT names the bytes,
 * BPF_OBJECT_SIZE their length, BPF_OBJECT_FILE is the object file.
 */
	.section .rodata
	.balign 8
	.global BPF_OBJECT
BPF_OBJECT:
	.incbin BPF_OBJECT_FILE
bpf_object_end:
	.balign 8
	.global BPF_OBJECT_SIZE
BPF_OBJECT_SIZE:
	.quad bpf_object_end - BPF_OBJECT
	.section .note.GNU-stack,"",@progbits
