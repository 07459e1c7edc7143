/*
 * The compiled XDP program (src/xdp/cfr_xdp.bpf.c), linked into cfrd so the
 * daemon and its program cannot come from different builds.
 */
	.section .rodata
	.balign 8
	.global cfr_xdp_object
cfr_xdp_object:
	.incbin CFR_XDP_OBJECT
	.global cfr_xdp_object_end
cfr_xdp_object_end:
	.section .note.GNU-stack,"",@progbits
