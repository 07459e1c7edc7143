/*
 * The compiled XDP program (src/xdp/cfr_xdp.bpf.c), linked into cfrd so the
 * daemon and its program cannot come from different builds.
 */
	.section .rodata
	.balign 8
	.global cfr_xdp_object
cfr_xdp_object:
	.incbin CFR_XDP_OBJECT
cfr_xdp_object_end:
	.balign 8
	.global cfr_xdp_object_size
cfr_xdp_object_size:
	.quad cfr_xdp_object_end - cfr_xdp_object
	.section .note.GNU-stack,"",@progbits
