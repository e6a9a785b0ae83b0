; Chip 0 of the two-chip example (system.yaml): s = a + b (int32), sent east to chip 1;
; chip 1 sends back s * c, which chip 0 stores at mem_e1 8..11.
; a at mem_w0 0..3, b at mem_e0 0..3 (int32 byte planes).
.queue mem_w0
    read 0, e0, 4          ; cycle 0: a -> e0..e3 (written at 1)
.queue mem_e0
    read 0, w0, 4          ; cycle 0: b -> w0..w3
.queue vxm0
    nop 2
    add e4, e0, w0         ; cycle 2: s = a + b, written to e4..e7 at 3
.queue c2c_e
    nop 6
    send 1, e4, 4          ; cycle 6: s reaches the east edge; arrives at chip 1 at 10
    nop 16
    recv 1, w0, 4          ; cycle 23: s * c arrives from chip 1 (sent at 19)
.queue mem_e1
    nop 25
    write 8, w0, 4         ; cycle 25: s * c -> mem_e1 8..11
