; Matrix-vector product on the MXM: y = x @ W, int8 x int8 -> int32, on tiny (VL 8).
; W (8 rows of 8 int8) at mem_w1[20..27]; x at mem_w0[0]; y -> mem_w1[100..103].
; Rows go west four at a time into mxm_w0's shadow buffer, are installed, and x
; streams through; the int32 result leaves east on four streams.
.config tiny
.queue mem_w1
    read 20, w0, 4         ; cycle 0: rows 0..3
    read 24, w0, 4         ; cycle 1: rows 4..7
    nop 11
    write 100, e0, 4       ; cycle 13: y
.queue mxm_w0
    nop 3
    lw 0, w0, 4            ; cycle 3: shadow rows 0..3
    lw 4, w0, 4            ; cycle 4: shadow rows 4..7 (written at 5)
    nop 1
    iw                     ; cycle 6: install
    mm e0, w4, 0           ; cycle 7: acc0 = x @ W, out at 7 + S + 2 = 11
.queue mem_w0
    nop 3
    read 0, w4             ; cycle 3: x, arrives at mxm_w0 (3 positions west) in cycle 7
