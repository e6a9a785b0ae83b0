; Vector add, MEM to MEM: c = a + b over int32 lanes.
; a: 4 words (byte planes) at mem_w0[0..3]; b: at mem_e0[0..3]; c -> mem_e1[8..11].
; mem_w0 (west of the VXM) sends a east, mem_e0 (east of it) sends b west; both
; arrive at the VXM in cycle 2; the sum (delay 1) is written at 3 and reaches
; mem_e1, two positions east, in cycle 5.
.config tiny
.queue mem_w0
    read 0, e0, 4          ; cycle 0: a -> e0..e3, written at 1
.queue mem_e0
    read 0, w0, 4          ; cycle 0: b -> w0..w3, written at 1
.queue vxm0
    nop 2
    add e4, e0, w0         ; cycle 2: c = a + b, written on e4..e7 at 3
.queue mem_e1
    nop 5
    write 8, e4, 4         ; cycle 5: c -> mem_e1[8..11]
