; One decode step of a GQA + MoE layer, reduced sizes, placed as Duplex places it:
; decode attention on Logic-PIM (low Op/B), projections and the expert FFN on the xPU.
; One KV group: 4 query heads share one K/V head (head_dim 64, 256 cached tokens).

.desc q        pimbuf 0x00002000  bf16 [4, 64]          ; query heads of one KV group, one token
.desc kcache   hbm    0x00000000  bf16 [256, 64]        ; keys of 256 past tokens
.desc kcache_t hbm    0x00000000  bf16 [64, 256] strides=[1, 64]   ; K transposed: a strided view
.desc vcache   hbm    0x00008000  bf16 [256, 64]        ; values of 256 past tokens
.desc scores   pimbuf 0x00000000  fp32 [4, 256]
.desc probs    pimbuf 0x00001000  bf16 [4, 256]
.desc attn     hbm    0x00010000  bf16 [4, 64]
.desc attn_row hbm    0x00010000  bf16 [1, 256]         ; the same 4 heads, concatenated
.desc wo       hbm    0x00010200  bf16 [256, 256]       ; output projection
.desc y        hbm    0x000f3220  fp32 [1, 256]
.desc x        hbm    0x00030200  bf16 [8, 256]         ; 8 tokens of the batch
.desc route    hbm    0x00031200  i32  [4]              ; the tokens routed to this expert
.desc gate_w   hbm    0x00031210  fp32 [4]              ; and their routing weights
.desc xe       sram   0x00000200  bf16 [4, 256]
.desc w1       hbm    0x00031220  bf16 [256, 512]       ; expert gate projection
.desc w3       hbm    0x00071220  bf16 [256, 512]       ; expert up projection
.desc w2       hbm    0x000b1220  bf16 [512, 256]       ; expert down projection
.desc g        sram   0x00000a00  bf16 [4, 512]
.desc u        sram   0x00001a00  bf16 [4, 512]
.desc act      sram   0x00002a00  bf16 [4, 512]
.desc h        sram   0x00003a00  bf16 [4, 512]
.desc ye       sram   0x00004a00  fp32 [4, 256]
.desc moe_out  hbm    0x000f1220  fp32 [8, 256]         ; combined expert outputs

attention:
    gemm.pim     scores, q, kcache_t                    ; S = Q K^T, Op/B ~ 4 (group size)
    softmax.pim  probs, scores, scale=0.125             ; 1/sqrt(64)
    gemm.pim     attn, probs, vcache                    ; O = P V
    signal.pim   token=1
    wait.xpu     token=1
    gemm.xpu     y, attn_row, wo                        ; output projection
expert:
    gather.xpu   xe, x, route                           ; MoE dispatch
    gemm.xpu     g, xe, w1
    gemm.xpu     u, xe, w3
    silu.xpu     act, g
    mul.xpu      h, act, u                              ; SwiGLU
    gemm.xpu     ye, h, w2
    scatter_add.xpu moe_out, ye, route, gate_w          ; weighted combine
    halt
