; fp32 multiply-add: d = a * b + c, lane by lane.
; a at mem_w0[0..3], b at mem_e0[0..3], c at mem_w0[4..7]; d -> mem_e1[8..11].
; The product leaves the VXM eastward; mem_e0 stores it and reads it back west,
; timed so that it meets c (sent east by mem_w0) at the VXM in cycle 10.
.config tiny
.queue mem_w0
    read 0, e0, 4          ; cycle 0: a
    nop 7
    read 4, e0, 4          ; cycle 8: c, arrives at the VXM in cycle 10
.queue mem_e0
    read 0, w0, 4          ; cycle 0: b
    nop 5
    write 16, e4, 4        ; cycle 6: the product (written at 5 by the VXM)
    nop 1
    read 16, w0, 4         ; cycle 8: product back west, arrives at the VXM in cycle 10
.queue vxm0
    nop 2
    fmul e4, e0, w0        ; cycle 2: a * b, delay 3 -> written at 5
    nop 7
    fadd e4, e0, w0        ; cycle 10: + c, written at 13
.queue mem_e1
    nop 15
    write 8, e4, 4         ; cycle 15: d
