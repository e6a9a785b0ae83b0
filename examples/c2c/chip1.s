; Chip 1 of the two-chip example (system.yaml): receives s from chip 0, multiplies it by
; c (mem_e0 0..3), stores the product at mem_w0 8..11 and sends it back to chip 0.
.queue c2c_w
    nop 10
    recv 0, e0, 4          ; cycle 10: s arrives over link 0 (sent at 6); e0..e3 at 11
    nop 8
    send 0, w4, 4          ; cycle 19: s * c reaches the west edge; arrives at chip 0 at 23
.queue mem_e0
    nop 12
    read 0, w0, 4          ; cycle 12: c -> w0..w3 (at the VXM at 14)
.queue vxm0
    nop 14
    mul w4, e0, w0         ; cycle 14: s * c, written to w4..w7 at 16
.queue mem_w0
    nop 17
    write 8, w4, 4         ; cycle 17: s * c -> mem_w0 8..11
