; Reduction across lanes with the SXM and VXM: every lane of the result holds the
; sum of all 8 int32 lanes of x (tiny, VL 8): three steps of rotate-and-add.
; x at mem_w0[0..3] and mem_w1[0..3]; result -> mem_e0[24..27].
; Each partial sum goes to mem_e0, which sends it west twice: once to sxm_w to be
; rotated, once to meet the rotated copy at the VXM.
.config tiny
.queue mem_w0
    read 0, w0, 4          ; cycle 0: x west to sxm_w (arrives at 3)
.queue mem_w1
    nop 6
    read 0, e4, 4          ; cycle 6: x east to the VXM (arrives at 9)
.queue sxm_w
    nop 3
    rot e0, w0, 1, 4       ; cycle 3: rot(x, 1), out at 3 + S + 1 = 6, at the VXM at 9
    nop 14
    rot e0, w0, 2, 4       ; cycle 18: rot(s1, 2), at the VXM at 24
    nop 14
    rot e0, w0, 4, 4       ; cycle 33: rot(s2, 4), at the VXM at 39
.queue vxm0
    nop 9
    add e0, e0, e4         ; cycle 9: s1 = x + rot(x, 1), written at 10
    nop 14
    add e0, e0, w0         ; cycle 24: s2 = s1 + rot(s1, 2), written at 25
    nop 14
    add e0, e0, w0         ; cycle 39: s3 = s2 + rot(s2, 4), written at 40
.queue mem_e0
    nop 11
    write 16, e0, 4        ; cycle 11: s1
    nop 1
    read 16, w0, 4         ; cycle 13: s1 west to sxm_w (arrives at 18)
    nop 8
    read 16, w0, 4         ; cycle 22: s1 west to the VXM (arrives at 24)
    nop 3
    write 20, e0, 4        ; cycle 26: s2
    nop 1
    read 20, w0, 4         ; cycle 28: s2 to sxm_w (arrives at 33)
    nop 8
    read 20, w0, 4         ; cycle 37: s2 to the VXM (arrives at 39)
    nop 3
    write 24, e0, 4        ; cycle 41: the sum in every lane
