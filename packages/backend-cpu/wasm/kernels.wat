;; Hot kernels of the CPU backend, in WebAssembly SIMD (128-bit). Assembled by scripts/build-wasm.mjs
;; at `pnpm build` with the wabt npm package; no system toolchain. The memory is the rank's heap,
;; imported, so the kernels read and write the same bytes as the TypeScript side.
;;
;; matmul: y[m, n] = sum_k x[m, k] * w[n, k] (+ b[n]); x [M, K], w [N, K] row-major (nn.Linear's
;; [out, in]), y [M, N]. matmul_f32 is the same with a scratch (below); matmul_bf16 / matmul_f16 with
;; w stored as 2-byte bf16 / IEEE half (x, b, y stay f32; products and sums are f32).
;;
;; Decode (M = 1) streams w once, as two strictly sequential streams (the two halves of the rows) —
;; no interleaving of neighbouring rows. f32 decode is DRAM-bound; half weights are widened in
;; registers as they stream, which makes their decode compute-bound on one core here (f16 most).
;;
;; Prefill (M > 1) is compute-bound: register tiles of four x rows × two w rows, k innermost, each
;; pair of w rows meeting a whole block of x rows while it is in L1. matmul_f32 / _bf16 / _f16 take a
;; scratch: x is copied into it interleaved so a tile reads four rows through one pointer, and half
;; weights are widened into it two rows at a time (once per block of x rows, not once per x row).
;; matmul (no scratch) tiles f32 x and w where they lie, about 20% slower.
;;
;; Shapes of V8's code that matter here (x64, V8 11): it allocates 15 xmm registers; it moves the
;; loads of a loop body ahead of the arithmetic, so an unrolled body holds all its loads live at once;
;; and a value that stays live across a call after a loop is spilled at its definition, inside the
;; loop. Hence: tiles of 8 accumulators, no unrolling in the tiles, horizontal sums written inline.
(module
  (import "env" "memory" (memory 1 65536))

  (func $hsum (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; scalar dot of the K % 4 tail: sum_{k in [k0, K)} x[k] * w[k]
  (func $tail (param $x i32) (param $w i32) (param $k0 i32) (param $K i32) (result f32)
    (local $s f32) (local $k i32)
    (local.set $k (local.get $k0))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $k) (local.get $K)))
        (local.set $s (f32.add (local.get $s)
          (f32.mul
            (f32.load (i32.add (local.get $x) (i32.shl (local.get $k) (i32.const 2))))
            (f32.load (i32.add (local.get $w) (i32.shl (local.get $k) (i32.const 2)))))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $l)))
    (local.get $s))

  (func $bias (param $b i32) (param $n i32) (result f32)
    (if (result f32) (i32.eqz (local.get $b))
      (then (f32.const 0))
      (else (f32.load (i32.add (local.get $b) (i32.shl (local.get $n) (i32.const 2)))))))

  ;; one x row against one w row, streaming w strictly in order: the fastest way to read a matrix
  ;; from DRAM here (one sequential stream beat four interleaved rows 2:1 in a GEMV microbenchmark).
  ;; Two accumulators, 8 floats per step, then 4 at a time, then the scalar tail.
  (func $row1 (param $xr i32) (param $w0 i32) (param $kBytes i32) (param $K i32) (param $K4 i32) (param $b i32) (param $n i32) (param $yr i32)
    (local $k i32) (local $k8 i32) (local $a0 v128) (local $a1 v128)
    (local.set $k8 (i32.and (local.get $kBytes) (i32.const -32)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $k) (local.get $k8)))
        (local.set $a0 (f32x4.add (local.get $a0)
          (f32x4.mul (v128.load (i32.add (local.get $xr) (local.get $k))) (v128.load (i32.add (local.get $w0) (local.get $k))))))
        (local.set $a1 (f32x4.add (local.get $a1)
          (f32x4.mul (v128.load offset=16 (i32.add (local.get $xr) (local.get $k))) (v128.load offset=16 (i32.add (local.get $w0) (local.get $k))))))
        (local.set $k (i32.add (local.get $k) (i32.const 32)))
        (br $l)))
    (if (i32.lt_u (local.get $k) (local.get $kBytes))
      (then
        (local.set $a0 (f32x4.add (local.get $a0)
          (f32x4.mul (v128.load (i32.add (local.get $xr) (local.get $k))) (v128.load (i32.add (local.get $w0) (local.get $k))))))))
    (f32.store (local.get $yr)
      (f32.add (f32.add (call $hsum (f32x4.add (local.get $a0) (local.get $a1))) (call $tail (local.get $xr) (local.get $w0) (local.get $K4) (local.get $K)))
               (call $bias (local.get $b) (local.get $n)))))

  ;; one x row against two w rows far apart (rows n and n + N/2): two sequential streams in flight
  ;; at once read DRAM about 30% faster here than one (a GEMV microbenchmark: 42 vs 32 GB/s).
  (func $row1x2 (param $xr i32) (param $wa i32) (param $wb i32) (param $kBytes i32) (param $K i32) (param $K4 i32)
        (param $b i32) (param $na i32) (param $nb i32) (param $ya i32) (param $yb i32)
    (local $k i32) (local $k8 i32) (local $x0 v128) (local $x1 v128)
    (local $a0 v128) (local $a1 v128) (local $c0 v128) (local $c1 v128)
    (local.set $k8 (i32.and (local.get $kBytes) (i32.const -32)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $k) (local.get $k8)))
        (local.set $x0 (v128.load (i32.add (local.get $xr) (local.get $k))))
        (local.set $x1 (v128.load offset=16 (i32.add (local.get $xr) (local.get $k))))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $x0) (v128.load (i32.add (local.get $wa) (local.get $k))))))
        (local.set $c0 (f32x4.add (local.get $c0) (f32x4.mul (local.get $x0) (v128.load (i32.add (local.get $wb) (local.get $k))))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $x1) (v128.load offset=16 (i32.add (local.get $wa) (local.get $k))))))
        (local.set $c1 (f32x4.add (local.get $c1) (f32x4.mul (local.get $x1) (v128.load offset=16 (i32.add (local.get $wb) (local.get $k))))))
        (local.set $k (i32.add (local.get $k) (i32.const 32)))
        (br $l)))
    (if (i32.lt_u (local.get $k) (local.get $kBytes))
      (then
        (local.set $x0 (v128.load (i32.add (local.get $xr) (local.get $k))))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $x0) (v128.load (i32.add (local.get $wa) (local.get $k))))))
        (local.set $c0 (f32x4.add (local.get $c0) (f32x4.mul (local.get $x0) (v128.load (i32.add (local.get $wb) (local.get $k))))))))
    (f32.store (local.get $ya)
      (f32.add (f32.add (call $hsum (f32x4.add (local.get $a0) (local.get $a1))) (call $tail (local.get $xr) (local.get $wa) (local.get $K4) (local.get $K)))
               (call $bias (local.get $b) (local.get $na))))
    (f32.store (local.get $yb)
      (f32.add (f32.add (call $hsum (f32x4.add (local.get $c0) (local.get $c1))) (call $tail (local.get $xr) (local.get $wb) (local.get $K4) (local.get $K)))
               (call $bias (local.get $b) (local.get $nb)))))

  ;; one x row against all of w (decode): rows n and n + N/2 together, each streamed in order
  (func $gemv (param $xr i32) (param $w i32) (param $b i32) (param $yr i32) (param $K i32) (param $N i32)
    (local $n i32) (local $half i32) (local $K4 i32) (local $kBytes i32) (local $rowBytes i32)
    (local.set $K4 (i32.and (local.get $K) (i32.const -4)))
    (local.set $kBytes (i32.shl (local.get $K4) (i32.const 2)))
    (local.set $rowBytes (i32.shl (local.get $K) (i32.const 2)))
    (local.set $half (i32.shr_u (local.get $N) (i32.const 1)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $n) (local.get $half)))
        (call $row1x2 (local.get $xr)
          (i32.add (local.get $w) (i32.mul (local.get $n) (local.get $rowBytes)))
          (i32.add (local.get $w) (i32.mul (i32.add (local.get $n) (local.get $half)) (local.get $rowBytes)))
          (local.get $kBytes) (local.get $K) (local.get $K4) (local.get $b)
          (local.get $n) (i32.add (local.get $n) (local.get $half))
          (i32.add (local.get $yr) (i32.shl (local.get $n) (i32.const 2)))
          (i32.add (local.get $yr) (i32.shl (i32.add (local.get $n) (local.get $half)) (i32.const 2))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $l)))
    ;; N odd: the last row alone
    (if (i32.and (local.get $N) (i32.const 1))
      (then
        (call $row1 (local.get $xr) (i32.add (local.get $w) (i32.mul (i32.sub (local.get $N) (i32.const 1)) (local.get $rowBytes)))
          (local.get $kBytes) (local.get $K) (local.get $K4) (local.get $b) (i32.sub (local.get $N) (i32.const 1))
          (i32.add (local.get $yr) (i32.shl (i32.sub (local.get $N) (i32.const 1)) (i32.const 2)))))))

  ;; ---- prefill (M > 1) ---------------------------------------------------------------------------
  ;; Tiles of 4 x rows × 2 w rows: 8 vector multiply-adds per 6 loads; the 8 accumulators and the 6
  ;; loads V8 hoists fill its 15 registers (3×4 and unrolled tiles spilled accumulators inside the
  ;; loop, which cost more than the extra reuse saved). Pointers advance rather than sharing an index,
  ;; so no per-load address add. Multiply-add peak measured here (mul and add pipes both full): about
  ;; 55 GFLOP/s; the in-place tiles reach ~43, the packed ones ~51.

  ;; rows of x per block: about 256 KB, so a block stays in L2 while w streams past it once
  (func $blockRows (param $K i32) (result i32)
    (local $rows i32)
    (local.set $rows (i32.and (i32.div_u (i32.const 65536) (local.get $K)) (i32.const -4)))
    (select (local.get $rows) (i32.const 4) (i32.ge_u (local.get $rows) (i32.const 4))))

  ;; four x rows ($xs bytes apart) against w rows $w0 and $w0 + $ws over the first $kb bytes (a
  ;; multiple of 16); writes y[m, n], y[m, n + 1] (+ the bias pair, lanes 0/1 of $bv) for the four rows
  (func $t4x2 (param $x0 i32) (param $xs i32) (param $w0 i32) (param $ws i32) (param $kb i32)
        (param $bv v128) (param $y0 i32) (param $ys i32)
    (local $x1 i32) (local $x2 i32) (local $x3 i32) (local $w1 i32) (local $end i32)
    (local $p v128) (local $q v128) (local $v v128) (local $r v128) (local $s v128)
    (local $a0 v128) (local $b0 v128) (local $a1 v128) (local $b1 v128)
    (local $a2 v128) (local $b2 v128) (local $a3 v128) (local $b3 v128)
    (local.set $x1 (i32.add (local.get $x0) (local.get $xs)))
    (local.set $x2 (i32.add (local.get $x1) (local.get $xs)))
    (local.set $x3 (i32.add (local.get $x2) (local.get $xs)))
    (local.set $w1 (i32.add (local.get $w0) (local.get $ws)))
    (local.set $end (i32.add (local.get $x0) (local.get $kb)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $x0) (local.get $end)))
        (local.set $p (v128.load (local.get $w0)))
        (local.set $q (v128.load (local.get $w1)))
        (local.set $v (v128.load (local.get $x0)))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $v) (local.get $p))))
        (local.set $b0 (f32x4.add (local.get $b0) (f32x4.mul (local.get $v) (local.get $q))))
        (local.set $v (v128.load (local.get $x1)))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $v) (local.get $p))))
        (local.set $b1 (f32x4.add (local.get $b1) (f32x4.mul (local.get $v) (local.get $q))))
        (local.set $v (v128.load (local.get $x2)))
        (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $v) (local.get $p))))
        (local.set $b2 (f32x4.add (local.get $b2) (f32x4.mul (local.get $v) (local.get $q))))
        (local.set $v (v128.load (local.get $x3)))
        (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $v) (local.get $p))))
        (local.set $b3 (f32x4.add (local.get $b3) (f32x4.mul (local.get $v) (local.get $q))))
        (local.set $x0 (i32.add (local.get $x0) (i32.const 16)))
        (local.set $x1 (i32.add (local.get $x1) (i32.const 16)))
        (local.set $x2 (i32.add (local.get $x2) (i32.const 16)))
        (local.set $x3 (i32.add (local.get $x3) (i32.const 16)))
        (local.set $w0 (i32.add (local.get $w0) (i32.const 16)))
        (local.set $w1 (i32.add (local.get $w1) (i32.const 16)))
        (br $l)))
    ;; rows 0 and 1: [a0 a0 b0 b0] halves summed, then even + odd lanes = [Σa0, Σb0, Σa1, Σb1]
    (local.set $r (f32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a0) (local.get $b0))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a0) (local.get $b0))))
    (local.set $s (f32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a1) (local.get $b1))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a1) (local.get $b1))))
    (local.set $r (f32x4.add (local.get $bv) (f32x4.add
      (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $r) (local.get $s))
      (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $r) (local.get $s)))))
    (v128.store64_lane 0 (local.get $y0) (local.get $r))
    (local.set $y0 (i32.add (local.get $y0) (local.get $ys)))
    (v128.store64_lane 1 (local.get $y0) (local.get $r))
    (local.set $y0 (i32.add (local.get $y0) (local.get $ys)))
    ;; rows 2 and 3
    (local.set $r (f32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a2) (local.get $b2))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a2) (local.get $b2))))
    (local.set $s (f32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a3) (local.get $b3))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a3) (local.get $b3))))
    (local.set $r (f32x4.add (local.get $bv) (f32x4.add
      (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $r) (local.get $s))
      (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $r) (local.get $s)))))
    (v128.store64_lane 0 (local.get $y0) (local.get $r))
    (v128.store64_lane 1 (i32.add (local.get $y0) (local.get $ys)) (local.get $r)))

  ;; one x row against the same two w rows (the rows of a block left over after the 4-row tiles); two
  ;; accumulators per column, 8 floats per step, so the add latency is hidden without a wider tile
  (func $t1x2 (param $x0 i32) (param $w0 i32) (param $ws i32) (param $kb i32) (param $bv v128) (param $y0 i32)
    (local $w1 i32) (local $end i32) (local $end8 i32) (local $u v128) (local $v v128) (local $r v128)
    (local $a0 v128) (local $b0 v128) (local $a1 v128) (local $b1 v128)
    (local.set $w1 (i32.add (local.get $w0) (local.get $ws)))
    (local.set $end (i32.add (local.get $x0) (local.get $kb)))
    (local.set $end8 (i32.add (local.get $x0) (i32.and (local.get $kb) (i32.const -32))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $x0) (local.get $end8)))
        (local.set $u (v128.load (local.get $x0)))
        (local.set $v (v128.load offset=16 (local.get $x0)))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $u) (v128.load (local.get $w0)))))
        (local.set $b0 (f32x4.add (local.get $b0) (f32x4.mul (local.get $u) (v128.load (local.get $w1)))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $v) (v128.load offset=16 (local.get $w0)))))
        (local.set $b1 (f32x4.add (local.get $b1) (f32x4.mul (local.get $v) (v128.load offset=16 (local.get $w1)))))
        (local.set $x0 (i32.add (local.get $x0) (i32.const 32)))
        (local.set $w0 (i32.add (local.get $w0) (i32.const 32)))
        (local.set $w1 (i32.add (local.get $w1) (i32.const 32)))
        (br $l)))
    (if (i32.lt_u (local.get $x0) (local.get $end))
      (then
        (local.set $u (v128.load (local.get $x0)))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $u) (v128.load (local.get $w0)))))
        (local.set $b0 (f32x4.add (local.get $b0) (f32x4.mul (local.get $u) (v128.load (local.get $w1)))))))
    (local.set $a0 (f32x4.add (local.get $a0) (local.get $a1)))
    (local.set $b0 (f32x4.add (local.get $b0) (local.get $b1)))
    (local.set $r (f32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a0) (local.get $b0))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a0) (local.get $b0))))
    (local.set $r (f32x4.add (local.get $bv) (f32x4.add
      (i8x16.shuffle 0 1 2 3 8 9 10 11 0 1 2 3 8 9 10 11 (local.get $r) (local.get $r))
      (i8x16.shuffle 4 5 6 7 12 13 14 15 4 5 6 7 12 13 14 15 (local.get $r) (local.get $r)))))
    (v128.store64_lane 0 (local.get $y0) (local.get $r)))

  ;; y[m, n], y[m, n + 1] for `rows` rows of x ($xs bytes apart) against the two f32 w rows at $wp and
  ;; $wp + $ws; the K % 4 tail is added here, after the tiles, so the tiles stay branch-free
  (func $panel2 (param $x i32) (param $xs i32) (param $rows i32) (param $wp i32) (param $ws i32) (param $K i32)
        (param $bv v128) (param $y i32) (param $ys i32)
    (local $K4 i32) (local $kb i32) (local $m i32) (local $xr i32) (local $yr i32)
    (local.set $K4 (i32.and (local.get $K) (i32.const -4)))
    (local.set $kb (i32.shl (local.get $K4) (i32.const 2)))
    (block $done
      (loop $l
        (br_if $done (i32.gt_u (i32.add (local.get $m) (i32.const 4)) (local.get $rows)))
        (call $t4x2 (i32.add (local.get $x) (i32.mul (local.get $m) (local.get $xs))) (local.get $xs)
          (local.get $wp) (local.get $ws) (local.get $kb) (local.get $bv)
          (i32.add (local.get $y) (i32.mul (local.get $m) (local.get $ys))) (local.get $ys))
        (local.set $m (i32.add (local.get $m) (i32.const 4)))
        (br $l)))
    (block $done1
      (loop $l1
        (br_if $done1 (i32.ge_u (local.get $m) (local.get $rows)))
        (call $t1x2 (i32.add (local.get $x) (i32.mul (local.get $m) (local.get $xs)))
          (local.get $wp) (local.get $ws) (local.get $kb) (local.get $bv)
          (i32.add (local.get $y) (i32.mul (local.get $m) (local.get $ys))))
        (local.set $m (i32.add (local.get $m) (i32.const 1)))
        (br $l1)))
    (if (i32.lt_u (local.get $K4) (local.get $K))
      (then
        (local.set $m (i32.const 0))
        (block $done2
          (loop $l2
            (br_if $done2 (i32.ge_u (local.get $m) (local.get $rows)))
            (local.set $xr (i32.add (local.get $x) (i32.mul (local.get $m) (local.get $xs))))
            (local.set $yr (i32.add (local.get $y) (i32.mul (local.get $m) (local.get $ys))))
            (f32.store (local.get $yr) (f32.add (f32.load (local.get $yr))
              (call $tail (local.get $xr) (local.get $wp) (local.get $K4) (local.get $K))))
            (f32.store offset=4 (local.get $yr) (f32.add (f32.load offset=4 (local.get $yr))
              (call $tail (local.get $xr) (i32.add (local.get $wp) (local.get $ws)) (local.get $K4) (local.get $K))))
            (local.set $m (i32.add (local.get $m) (i32.const 1)))
            (br $l2))))))

  ;; The in-place product for M > 1, N > 1 (f32 w read where it lies, no scratch).
  ;; Rows of x are taken in blocks of about 256 KB, which stay in L2 while every w row passes once per
  ;; block; within a block, one pair of w rows (from L1) meets every row of the block.
  ;; N odd: the last pair is (N - 2, N - 1); column N - 2 is computed twice, to the same value.
  (func $gemm2 (param $x i32) (param $w i32) (param $b i32) (param $y i32) (param $M i32) (param $K i32) (param $N i32)
    (local $xs i32) (local $ys i32) (local $block i32) (local $m0 i32) (local $rows i32) (local $n i32) (local $bv v128)
    (local.set $xs (i32.shl (local.get $K) (i32.const 2)))
    (local.set $ys (i32.shl (local.get $N) (i32.const 2)))
    (local.set $block (call $blockRows (local.get $K)))
    (block $mDone
      (loop $mLoop
        (br_if $mDone (i32.ge_u (local.get $m0) (local.get $M)))
        (local.set $rows (i32.sub (local.get $M) (local.get $m0)))
        (if (i32.gt_u (local.get $rows) (local.get $block)) (then (local.set $rows (local.get $block))))
        (local.set $n (i32.const 0))
        (loop $nLoop
          (if (i32.gt_u (i32.add (local.get $n) (i32.const 2)) (local.get $N))
            (then (local.set $n (i32.sub (local.get $N) (i32.const 2)))))
          (local.set $bv (if (result v128) (local.get $b)
            (then (v128.load64_splat (i32.add (local.get $b) (i32.shl (local.get $n) (i32.const 2)))))
            (else (v128.const i32x4 0 0 0 0))))
          (call $panel2
            (i32.add (local.get $x) (i32.mul (local.get $m0) (local.get $xs))) (local.get $xs) (local.get $rows)
            (i32.add (local.get $w) (i32.mul (local.get $n) (local.get $xs))) (local.get $xs) (local.get $K) (local.get $bv)
            (i32.add (local.get $y) (i32.add (i32.mul (local.get $m0) (local.get $ys)) (i32.shl (local.get $n) (i32.const 2))))
            (local.get $ys))
          (local.set $n (i32.add (local.get $n) (i32.const 2)))
          (br_if $nLoop (i32.lt_u (local.get $n) (local.get $N))))
        (local.set $m0 (i32.add (local.get $m0) (local.get $rows)))
        (br $mLoop))))

  (func $matmul_inplace (export "matmul") (param $x i32) (param $w i32) (param $b i32) (param $y i32) (param $M i32) (param $K i32) (param $N i32)
    (local $m i32)
    (if (i32.or (i32.eqz (local.get $M)) (i32.eqz (local.get $N))) (then (return)))
    ;; decode: a single row of x reads w once, in order
    (if (i32.eq (local.get $M) (i32.const 1))
      (then
        (call $gemv (local.get $x) (local.get $w) (local.get $b) (local.get $y) (local.get $K) (local.get $N))
        (return)))
    ;; one output column: the tiles need two
    (if (i32.eq (local.get $N) (i32.const 1))
      (then
        (loop $l
          (call $gemv
            (i32.add (local.get $x) (i32.mul (local.get $m) (i32.shl (local.get $K) (i32.const 2)))) (local.get $w) (local.get $b)
            (i32.add (local.get $y) (i32.shl (local.get $m) (i32.const 2))) (local.get $K) (i32.const 1))
          (local.set $m (i32.add (local.get $m) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $m) (local.get $M))))
        (return)))
    (call $gemm2 (local.get $x) (local.get $w) (local.get $b) (local.get $y) (local.get $M) (local.get $K) (local.get $N)))

  ;; ---- half-precision weights ---------------------------------------------------------------------
  ;; Eight 2-byte elements per 16-byte load (any alignment). Widening to f32 keeps the element order,
  ;; so x is read as it is (an even/odd split with x rearranged to match measured no faster).
  ;;   bf16: the top half of an f32, so interleaving 16-bit zeros below each element (one unpack per
  ;;         four elements) is the whole conversion.
  ;;   f16:  the f32 bit pattern sign << 31 | (h & 0x7fff) << 13 is h's value times 2^-112, for normals
  ;;         and subnormals alike (its exponent field is h's, unbiased by 112 too many). Built per
  ;;         16-bit lane: high half = sign | (h & 0x7fff) >> 3 = (h >>s 3) & 0x8fff, low half = h << 13;
  ;;         two unpacks interleave them. Inf and NaN (exponent 31) come out finite, as
  ;;         ±2^16·(1 + m/1024); checkpoints do not hold them. f16 subnormals become f32 subnormals
  ;;         on the way (wasm has no flush-to-zero), and sparse subnormal operands are slow on this
  ;;         CPU (AMD Zen 5): the ~0.3% a trained f16 checkpoint has make f16 decode ~1.5× slower. An exact
  ;;         conversion that never forms a subnormal (rebias by adding 112 to the exponent, then fix the
  ;;         exponent-0 lanes) needs three times the operations and measured about half as fast even
  ;;         with 0.3% subnormals; it only wins from a few percent of them.

  ;; one f16 (low 16 bits of $h) as the f32 it is exactly
  (func $f16 (param $h i32) (result f32)
    (f32.mul
      (f32.reinterpret_i32 (i32.and (i32.shr_s (i32.shl (local.get $h) (i32.const 16)) (i32.const 3)) (i32.const 0x8fffe000)))
      (f32.const 0x1p112)))

  ;; the same pattern without the 2^112: the value times 2^-112, as the decode loops use it
  (func $f16scaled (param $h i32) (result f32)
    (f32.reinterpret_i32 (i32.and (i32.shr_s (i32.shl (local.get $h) (i32.const 16)) (i32.const 3)) (i32.const 0x8fffe000))))

  ;; Decode: x against bf16 rows $wa and $wb (far apart, each streamed in order), 16 elements of each
  ;; per step; stores the two dot products plus $ba / $bb at $ya / $yb. $wa = $wb is allowed (N odd).
  (func $pair_bf16 (param $x i32) (param $wa i32) (param $wb i32) (param $K i32)
        (param $ba f32) (param $bb f32) (param $ya i32) (param $yb i32)
    (local $end i32) (local $all i32) (local $t v128) (local $r v128) (local $xs f32) (local $sa f32) (local $sb f32)
    (local $x0 v128) (local $x1 v128) (local $x2 v128) (local $x3 v128)
    (local $a0 v128) (local $a1 v128) (local $c0 v128) (local $c1 v128)
    (local.set $end (i32.add (local.get $wa) (i32.shl (i32.and (local.get $K) (i32.const -16)) (i32.const 1))))
    (local.set $all (i32.add (local.get $wa) (i32.shl (local.get $K) (i32.const 1))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $wa) (local.get $end)))
        (local.set $x0 (v128.load (local.get $x)))
        (local.set $x1 (v128.load offset=16 (local.get $x)))
        (local.set $x2 (v128.load offset=32 (local.get $x)))
        (local.set $x3 (v128.load offset=48 (local.get $x)))
        (local.set $t (v128.load (local.get $wa)))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $x0)
          (i8x16.shuffle 16 17 0 1 18 19 2 3 20 21 4 5 22 23 6 7 (local.get $t) (v128.const i32x4 0 0 0 0)))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $x1)
          (i8x16.shuffle 24 25 8 9 26 27 10 11 28 29 12 13 30 31 14 15 (local.get $t) (v128.const i32x4 0 0 0 0)))))
        (local.set $t (v128.load offset=16 (local.get $wa)))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $x2)
          (i8x16.shuffle 16 17 0 1 18 19 2 3 20 21 4 5 22 23 6 7 (local.get $t) (v128.const i32x4 0 0 0 0)))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $x3)
          (i8x16.shuffle 24 25 8 9 26 27 10 11 28 29 12 13 30 31 14 15 (local.get $t) (v128.const i32x4 0 0 0 0)))))
        (local.set $t (v128.load (local.get $wb)))
        (local.set $c0 (f32x4.add (local.get $c0) (f32x4.mul (local.get $x0)
          (i8x16.shuffle 16 17 0 1 18 19 2 3 20 21 4 5 22 23 6 7 (local.get $t) (v128.const i32x4 0 0 0 0)))))
        (local.set $c1 (f32x4.add (local.get $c1) (f32x4.mul (local.get $x1)
          (i8x16.shuffle 24 25 8 9 26 27 10 11 28 29 12 13 30 31 14 15 (local.get $t) (v128.const i32x4 0 0 0 0)))))
        (local.set $t (v128.load offset=16 (local.get $wb)))
        (local.set $c0 (f32x4.add (local.get $c0) (f32x4.mul (local.get $x2)
          (i8x16.shuffle 16 17 0 1 18 19 2 3 20 21 4 5 22 23 6 7 (local.get $t) (v128.const i32x4 0 0 0 0)))))
        (local.set $c1 (f32x4.add (local.get $c1) (f32x4.mul (local.get $x3)
          (i8x16.shuffle 24 25 8 9 26 27 10 11 28 29 12 13 30 31 14 15 (local.get $t) (v128.const i32x4 0 0 0 0)))))
        (local.set $x (i32.add (local.get $x) (i32.const 64)))
        (local.set $wa (i32.add (local.get $wa) (i32.const 32)))
        (local.set $wb (i32.add (local.get $wb) (i32.const 32)))
        (br $l)))
    (if (i32.and (local.get $K) (i32.const 8))
      (then
        (local.set $x0 (v128.load (local.get $x)))
        (local.set $x1 (v128.load offset=16 (local.get $x)))
        (local.set $t (v128.load (local.get $wa)))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $x0)
          (i8x16.shuffle 16 17 0 1 18 19 2 3 20 21 4 5 22 23 6 7 (local.get $t) (v128.const i32x4 0 0 0 0)))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $x1)
          (i8x16.shuffle 24 25 8 9 26 27 10 11 28 29 12 13 30 31 14 15 (local.get $t) (v128.const i32x4 0 0 0 0)))))
        (local.set $t (v128.load (local.get $wb)))
        (local.set $c0 (f32x4.add (local.get $c0) (f32x4.mul (local.get $x0)
          (i8x16.shuffle 16 17 0 1 18 19 2 3 20 21 4 5 22 23 6 7 (local.get $t) (v128.const i32x4 0 0 0 0)))))
        (local.set $c1 (f32x4.add (local.get $c1) (f32x4.mul (local.get $x1)
          (i8x16.shuffle 24 25 8 9 26 27 10 11 28 29 12 13 30 31 14 15 (local.get $t) (v128.const i32x4 0 0 0 0)))))
        (local.set $x (i32.add (local.get $x) (i32.const 32)))
        (local.set $wa (i32.add (local.get $wa) (i32.const 16)))
        (local.set $wb (i32.add (local.get $wb) (i32.const 16)))))
    (local.set $a0 (f32x4.add (local.get $a0) (local.get $a1)))
    (local.set $c0 (f32x4.add (local.get $c0) (local.get $c1)))
    (local.set $r (f32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a0) (local.get $c0))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a0) (local.get $c0))))
    (local.set $sa (f32.add (f32x4.extract_lane 0 (local.get $r)) (f32x4.extract_lane 1 (local.get $r))))
    (local.set $sb (f32.add (f32x4.extract_lane 2 (local.get $r)) (f32x4.extract_lane 3 (local.get $r))))
    ;; the K % 8 tail, scalar
    (block $tDone
      (loop $t
        (br_if $tDone (i32.ge_u (local.get $wa) (local.get $all)))
        (local.set $xs (f32.load (local.get $x)))
        (local.set $sa (f32.add (local.get $sa) (f32.mul (local.get $xs)
          (f32.reinterpret_i32 (i32.shl (i32.load16_u (local.get $wa)) (i32.const 16))))))
        (local.set $sb (f32.add (local.get $sb) (f32.mul (local.get $xs)
          (f32.reinterpret_i32 (i32.shl (i32.load16_u (local.get $wb)) (i32.const 16))))))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $wa (i32.add (local.get $wa) (i32.const 2)))
        (local.set $wb (i32.add (local.get $wb) (i32.const 2)))
        (br $t)))
    (f32.store (local.get $ya) (f32.add (local.get $sa) (local.get $ba)))
    (f32.store (local.get $yb) (f32.add (local.get $sb) (local.get $bb))))

  ;; As $pair_bf16 for f16 (without a scratch; $pair_f16s is the faster form). Decode is
  ;; compute-bound for f16 (the widening costs more than the multiply-adds), so the rebias multiply
  ;; moves from each w vector to each x vector, which both streams share: x·2^64 times w·2^-112 is
  ;; the product scaled by 2^-48, undone once at the end. Exact unless |x| ≥ 2^64 (x overflows) or a
  ;; product is below 2^-78 in magnitude (then it is rounded as a subnormal, an absolute error under
  ;; 2^-101).
  (func $pair_f16 (param $x i32) (param $wa i32) (param $wb i32) (param $K i32)
        (param $ba f32) (param $bb f32) (param $ya i32) (param $yb i32)
    (local $end i32) (local $all i32) (local $t v128) (local $lo v128) (local $hi v128) (local $r v128)
    (local $xs f32) (local $sa f32) (local $sb f32)
    (local $x0 v128) (local $x1 v128) (local $x2 v128) (local $x3 v128)
    (local $a0 v128) (local $a1 v128) (local $c0 v128) (local $c1 v128)
    (local.set $end (i32.add (local.get $wa) (i32.shl (i32.and (local.get $K) (i32.const -16)) (i32.const 1))))
    (local.set $all (i32.add (local.get $wa) (i32.shl (local.get $K) (i32.const 1))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $wa) (local.get $end)))
        (local.set $x0 (f32x4.mul (v128.load (local.get $x)) (v128.const f32x4 0x1p64 0x1p64 0x1p64 0x1p64)))
        (local.set $x1 (f32x4.mul (v128.load offset=16 (local.get $x)) (v128.const f32x4 0x1p64 0x1p64 0x1p64 0x1p64)))
        (local.set $x2 (f32x4.mul (v128.load offset=32 (local.get $x)) (v128.const f32x4 0x1p64 0x1p64 0x1p64 0x1p64)))
        (local.set $x3 (f32x4.mul (v128.load offset=48 (local.get $x)) (v128.const f32x4 0x1p64 0x1p64 0x1p64 0x1p64)))
        (local.set $t (v128.load (local.get $wa)))
        (local.set $lo (i16x8.shl (local.get $t) (i32.const 13)))
        (local.set $hi (v128.and (i16x8.shr_s (local.get $t) (i32.const 3)) (v128.const i16x8 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff)))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $x0)
          (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $lo) (local.get $hi)))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $x1)
          (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $lo) (local.get $hi)))))
        (local.set $t (v128.load offset=16 (local.get $wa)))
        (local.set $lo (i16x8.shl (local.get $t) (i32.const 13)))
        (local.set $hi (v128.and (i16x8.shr_s (local.get $t) (i32.const 3)) (v128.const i16x8 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff)))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $x2)
          (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $lo) (local.get $hi)))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $x3)
          (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $lo) (local.get $hi)))))
        (local.set $t (v128.load (local.get $wb)))
        (local.set $lo (i16x8.shl (local.get $t) (i32.const 13)))
        (local.set $hi (v128.and (i16x8.shr_s (local.get $t) (i32.const 3)) (v128.const i16x8 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff)))
        (local.set $c0 (f32x4.add (local.get $c0) (f32x4.mul (local.get $x0)
          (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $lo) (local.get $hi)))))
        (local.set $c1 (f32x4.add (local.get $c1) (f32x4.mul (local.get $x1)
          (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $lo) (local.get $hi)))))
        (local.set $t (v128.load offset=16 (local.get $wb)))
        (local.set $lo (i16x8.shl (local.get $t) (i32.const 13)))
        (local.set $hi (v128.and (i16x8.shr_s (local.get $t) (i32.const 3)) (v128.const i16x8 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff)))
        (local.set $c0 (f32x4.add (local.get $c0) (f32x4.mul (local.get $x2)
          (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $lo) (local.get $hi)))))
        (local.set $c1 (f32x4.add (local.get $c1) (f32x4.mul (local.get $x3)
          (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $lo) (local.get $hi)))))
        (local.set $x (i32.add (local.get $x) (i32.const 64)))
        (local.set $wa (i32.add (local.get $wa) (i32.const 32)))
        (local.set $wb (i32.add (local.get $wb) (i32.const 32)))
        (br $l)))
    (if (i32.and (local.get $K) (i32.const 8))
      (then
        (local.set $x0 (f32x4.mul (v128.load (local.get $x)) (v128.const f32x4 0x1p64 0x1p64 0x1p64 0x1p64)))
        (local.set $x1 (f32x4.mul (v128.load offset=16 (local.get $x)) (v128.const f32x4 0x1p64 0x1p64 0x1p64 0x1p64)))
        (local.set $t (v128.load (local.get $wa)))
        (local.set $lo (i16x8.shl (local.get $t) (i32.const 13)))
        (local.set $hi (v128.and (i16x8.shr_s (local.get $t) (i32.const 3)) (v128.const i16x8 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff)))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $x0)
          (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $lo) (local.get $hi)))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $x1)
          (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $lo) (local.get $hi)))))
        (local.set $t (v128.load (local.get $wb)))
        (local.set $lo (i16x8.shl (local.get $t) (i32.const 13)))
        (local.set $hi (v128.and (i16x8.shr_s (local.get $t) (i32.const 3)) (v128.const i16x8 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff)))
        (local.set $c0 (f32x4.add (local.get $c0) (f32x4.mul (local.get $x0)
          (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $lo) (local.get $hi)))))
        (local.set $c1 (f32x4.add (local.get $c1) (f32x4.mul (local.get $x1)
          (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $lo) (local.get $hi)))))
        (local.set $x (i32.add (local.get $x) (i32.const 32)))
        (local.set $wa (i32.add (local.get $wa) (i32.const 16)))
        (local.set $wb (i32.add (local.get $wb) (i32.const 16)))))
    (local.set $a0 (f32x4.add (local.get $a0) (local.get $a1)))
    (local.set $c0 (f32x4.add (local.get $c0) (local.get $c1)))
    (local.set $r (f32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a0) (local.get $c0))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a0) (local.get $c0))))
    (local.set $sa (f32.mul (f32.const 0x1p48) (f32.add (f32x4.extract_lane 0 (local.get $r)) (f32x4.extract_lane 1 (local.get $r)))))
    (local.set $sb (f32.mul (f32.const 0x1p48) (f32.add (f32x4.extract_lane 2 (local.get $r)) (f32x4.extract_lane 3 (local.get $r)))))
    ;; the K % 8 tail, scalar and unscaled
    (block $tDone
      (loop $t
        (br_if $tDone (i32.ge_u (local.get $wa) (local.get $all)))
        (local.set $xs (f32.load (local.get $x)))
        (local.set $sa (f32.add (local.get $sa) (f32.mul (local.get $xs) (call $f16 (i32.load16_u (local.get $wa))))))
        (local.set $sb (f32.add (local.get $sb) (f32.mul (local.get $xs) (call $f16 (i32.load16_u (local.get $wb))))))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $wa (i32.add (local.get $wa) (i32.const 2)))
        (local.set $wb (i32.add (local.get $wb) (i32.const 2)))
        (br $t)))
    (f32.store (local.get $ya) (f32.add (local.get $sa) (local.get $ba)))
    (f32.store (local.get $yb) (f32.add (local.get $sb) (local.get $bb))))

  ;; As $pair_f16 with x already scaled by 2^64 (by $prescale, into the scratch): no multiply per x
  ;; vector, and fewer live registers — about a third faster than $pair_f16 here.
  (func $pair_f16s (param $x i32) (param $wa i32) (param $wb i32) (param $K i32)
        (param $ba f32) (param $bb f32) (param $ya i32) (param $yb i32)
    (local $end i32) (local $all i32) (local $t v128) (local $lo v128) (local $hi v128) (local $r v128)
    (local $xs f32) (local $sa f32) (local $sb f32)
    (local $x0 v128) (local $x1 v128) (local $x2 v128) (local $x3 v128)
    (local $a0 v128) (local $a1 v128) (local $c0 v128) (local $c1 v128)
    (local.set $end (i32.add (local.get $wa) (i32.shl (i32.and (local.get $K) (i32.const -16)) (i32.const 1))))
    (local.set $all (i32.add (local.get $wa) (i32.shl (local.get $K) (i32.const 1))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $wa) (local.get $end)))
        (local.set $x0 (v128.load (local.get $x)))
        (local.set $x1 (v128.load offset=16 (local.get $x)))
        (local.set $x2 (v128.load offset=32 (local.get $x)))
        (local.set $x3 (v128.load offset=48 (local.get $x)))
        (local.set $t (v128.load (local.get $wa)))
        (local.set $lo (i16x8.shl (local.get $t) (i32.const 13)))
        (local.set $hi (v128.and (i16x8.shr_s (local.get $t) (i32.const 3)) (v128.const i16x8 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff)))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $x0)
          (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $lo) (local.get $hi)))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $x1)
          (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $lo) (local.get $hi)))))
        (local.set $t (v128.load offset=16 (local.get $wa)))
        (local.set $lo (i16x8.shl (local.get $t) (i32.const 13)))
        (local.set $hi (v128.and (i16x8.shr_s (local.get $t) (i32.const 3)) (v128.const i16x8 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff)))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $x2)
          (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $lo) (local.get $hi)))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $x3)
          (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $lo) (local.get $hi)))))
        (local.set $t (v128.load (local.get $wb)))
        (local.set $lo (i16x8.shl (local.get $t) (i32.const 13)))
        (local.set $hi (v128.and (i16x8.shr_s (local.get $t) (i32.const 3)) (v128.const i16x8 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff)))
        (local.set $c0 (f32x4.add (local.get $c0) (f32x4.mul (local.get $x0)
          (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $lo) (local.get $hi)))))
        (local.set $c1 (f32x4.add (local.get $c1) (f32x4.mul (local.get $x1)
          (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $lo) (local.get $hi)))))
        (local.set $t (v128.load offset=16 (local.get $wb)))
        (local.set $lo (i16x8.shl (local.get $t) (i32.const 13)))
        (local.set $hi (v128.and (i16x8.shr_s (local.get $t) (i32.const 3)) (v128.const i16x8 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff)))
        (local.set $c0 (f32x4.add (local.get $c0) (f32x4.mul (local.get $x2)
          (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $lo) (local.get $hi)))))
        (local.set $c1 (f32x4.add (local.get $c1) (f32x4.mul (local.get $x3)
          (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $lo) (local.get $hi)))))
        (local.set $x (i32.add (local.get $x) (i32.const 64)))
        (local.set $wa (i32.add (local.get $wa) (i32.const 32)))
        (local.set $wb (i32.add (local.get $wb) (i32.const 32)))
        (br $l)))
    (if (i32.and (local.get $K) (i32.const 8))
      (then
        (local.set $x0 (v128.load (local.get $x)))
        (local.set $x1 (v128.load offset=16 (local.get $x)))
        (local.set $t (v128.load (local.get $wa)))
        (local.set $lo (i16x8.shl (local.get $t) (i32.const 13)))
        (local.set $hi (v128.and (i16x8.shr_s (local.get $t) (i32.const 3)) (v128.const i16x8 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff)))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $x0)
          (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $lo) (local.get $hi)))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $x1)
          (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $lo) (local.get $hi)))))
        (local.set $t (v128.load (local.get $wb)))
        (local.set $lo (i16x8.shl (local.get $t) (i32.const 13)))
        (local.set $hi (v128.and (i16x8.shr_s (local.get $t) (i32.const 3)) (v128.const i16x8 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff)))
        (local.set $c0 (f32x4.add (local.get $c0) (f32x4.mul (local.get $x0)
          (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $lo) (local.get $hi)))))
        (local.set $c1 (f32x4.add (local.get $c1) (f32x4.mul (local.get $x1)
          (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $lo) (local.get $hi)))))
        (local.set $x (i32.add (local.get $x) (i32.const 32)))
        (local.set $wa (i32.add (local.get $wa) (i32.const 16)))
        (local.set $wb (i32.add (local.get $wb) (i32.const 16)))))
    (local.set $a0 (f32x4.add (local.get $a0) (local.get $a1)))
    (local.set $c0 (f32x4.add (local.get $c0) (local.get $c1)))
    (local.set $r (f32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a0) (local.get $c0))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a0) (local.get $c0))))
    (local.set $sa (f32.add (f32x4.extract_lane 0 (local.get $r)) (f32x4.extract_lane 1 (local.get $r))))
    (local.set $sb (f32.add (f32x4.extract_lane 2 (local.get $r)) (f32x4.extract_lane 3 (local.get $r))))
    ;; the K % 8 tail, scalar, in the same scaled domain
    (block $tDone
      (loop $t
        (br_if $tDone (i32.ge_u (local.get $wa) (local.get $all)))
        (local.set $xs (f32.load (local.get $x)))
        (local.set $sa (f32.add (local.get $sa) (f32.mul (local.get $xs) (call $f16scaled (i32.load16_u (local.get $wa))))))
        (local.set $sb (f32.add (local.get $sb) (f32.mul (local.get $xs) (call $f16scaled (i32.load16_u (local.get $wb))))))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $wa (i32.add (local.get $wa) (i32.const 2)))
        (local.set $wb (i32.add (local.get $wb) (i32.const 2)))
        (br $t)))
    (f32.store (local.get $ya) (f32.add (f32.mul (f32.const 0x1p48) (local.get $sa)) (local.get $ba)))
    (f32.store (local.get $yb) (f32.add (f32.mul (f32.const 0x1p48) (local.get $sb)) (local.get $bb))))

  ;; x·2^64 → $dst, K floats (for $pair_f16s)
  (func $prescale (param $x i32) (param $dst i32) (param $K i32)
    (local $end i32) (local $all i32)
    (local.set $end (i32.add (local.get $x) (i32.shl (i32.and (local.get $K) (i32.const -4)) (i32.const 2))))
    (local.set $all (i32.add (local.get $x) (i32.shl (local.get $K) (i32.const 2))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (v128.store (local.get $dst) (f32x4.mul (v128.load (local.get $x)) (v128.const f32x4 0x1p64 0x1p64 0x1p64 0x1p64)))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (br $l)))
    (block $tDone
      (loop $t
        (br_if $tDone (i32.ge_u (local.get $x) (local.get $all)))
        (f32.store (local.get $dst) (f32.mul (f32.load (local.get $x)) (f32.const 0x1p64)))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (br $t))))

  ;; one x row against all of w, 2-byte elements: rows n and n + N/2 together; N odd: the last row
  ;; is paired with itself. $mode: 0 = bf16, 1 = f16, 2 = f16 with x already scaled by 2^64.
  (func $gemv_half (param $x i32) (param $w i32) (param $b i32) (param $y i32) (param $K i32) (param $N i32) (param $mode i32)
    (local $n i32) (local $half i32) (local $rb i32) (local $na i32) (local $nb i32)
    (local.set $rb (i32.shl (local.get $K) (i32.const 1)))
    (local.set $half (i32.shr_u (local.get $N) (i32.const 1)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $n) (i32.sub (local.get $N) (local.get $half))))
        (local.set $na (local.get $n))
        (local.set $nb (i32.add (local.get $n) (local.get $half)))
        (if (i32.ge_u (local.get $n) (local.get $half))
          (then
            (local.set $na (i32.sub (local.get $N) (i32.const 1)))
            (local.set $nb (local.get $na))))
        (if (i32.eq (local.get $mode) (i32.const 2))
          (then
            (call $pair_f16s (local.get $x)
              (i32.add (local.get $w) (i32.mul (local.get $na) (local.get $rb)))
              (i32.add (local.get $w) (i32.mul (local.get $nb) (local.get $rb)))
              (local.get $K) (call $bias (local.get $b) (local.get $na)) (call $bias (local.get $b) (local.get $nb))
              (i32.add (local.get $y) (i32.shl (local.get $na) (i32.const 2)))
              (i32.add (local.get $y) (i32.shl (local.get $nb) (i32.const 2)))))
        (else (if (local.get $mode)
          (then
            (call $pair_f16 (local.get $x)
              (i32.add (local.get $w) (i32.mul (local.get $na) (local.get $rb)))
              (i32.add (local.get $w) (i32.mul (local.get $nb) (local.get $rb)))
              (local.get $K) (call $bias (local.get $b) (local.get $na)) (call $bias (local.get $b) (local.get $nb))
              (i32.add (local.get $y) (i32.shl (local.get $na) (i32.const 2)))
              (i32.add (local.get $y) (i32.shl (local.get $nb) (i32.const 2)))))
          (else
            (call $pair_bf16 (local.get $x)
              (i32.add (local.get $w) (i32.mul (local.get $na) (local.get $rb)))
              (i32.add (local.get $w) (i32.mul (local.get $nb) (local.get $rb)))
              (local.get $K) (call $bias (local.get $b) (local.get $na)) (call $bias (local.get $b) (local.get $nb))
              (i32.add (local.get $y) (i32.shl (local.get $na) (i32.const 2)))
              (i32.add (local.get $y) (i32.shl (local.get $nb) (i32.const 2))))))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $l))))

  ;; Packed path (matmul_f32 / _bf16 / _f16 with a scratch). Up to 16 rows of x at a time are copied
  ;; into the scratch as groups of four rows interleaved 4 floats at a time — for each group of four k,
  ;; the four rows' floats [4g, 4g + 4) in row order, 64 bytes — so a 4×2 tile reads its four x rows
  ;; through one pointer: 3 pointer updates and 3 load streams per step instead of 6 (about 20% faster
  ;; than in place, ~90% of the multiply-add peak measured here). Rows of a last, partial group are
  ;; zeros, computed and not stored. w stays where it lies for f32 (each pair of rows is read from
  ;; DRAM while the first tile computes); half weights are widened a pair of rows at a time into the
  ;; scratch after the x block. Scratch layout: x block 64·(K & -4) bytes, then the pair 8·K bytes.

  ;; rows [0, rows) of x ($xs bytes apart) → the packed block at $px (groups of 4 rows, zero-padded)
  (func $pack_x (param $x i32) (param $xs i32) (param $rows i32) (param $K4 i32) (param $px i32)
    (local $r i32) (local $all i32) (local $src i32) (local $end i32) (local $dst i32)
    (local.set $all (i32.and (i32.add (local.get $rows) (i32.const 3)) (i32.const -4)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $r) (local.get $all)))
        (local.set $dst (i32.add (local.get $px) (i32.add
          (i32.mul (i32.shr_u (local.get $r) (i32.const 2)) (i32.shl (local.get $K4) (i32.const 4)))
          (i32.shl (i32.and (local.get $r) (i32.const 3)) (i32.const 4)))))
        (local.set $src (i32.add (local.get $x) (i32.mul (local.get $r) (local.get $xs))))
        (local.set $end (i32.add (local.get $src) (i32.shl (local.get $K4) (i32.const 2))))
        (if (i32.lt_u (local.get $r) (local.get $rows))
          (then
            (block $cDone
              (loop $c
                (br_if $cDone (i32.ge_u (local.get $src) (local.get $end)))
                (v128.store (local.get $dst) (v128.load (local.get $src)))
                (local.set $src (i32.add (local.get $src) (i32.const 16)))
                (local.set $dst (i32.add (local.get $dst) (i32.const 64)))
                (br $c))))
          (else
            (block $zDone
              (loop $z
                (br_if $zDone (i32.ge_u (local.get $src) (local.get $end)))
                (v128.store (local.get $dst) (v128.const i32x4 0 0 0 0))
                (local.set $src (i32.add (local.get $src) (i32.const 16)))
                (local.set $dst (i32.add (local.get $dst) (i32.const 64)))
                (br $z)))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $l))))

  ;; one packed group of four x rows against w rows $w0 and $w0 + $ws over the first $kb bytes (a
  ;; multiple of 16); writes y[m, n], y[m, n + 1] (+ lanes 0/1 of $bv) for the first $rows rows
  (func $t4x2p (param $px i32) (param $w0 i32) (param $ws i32) (param $kb i32) (param $bv v128)
        (param $y0 i32) (param $ys i32) (param $rows i32)
    (local $w1 i32) (local $end i32)
    (local $p v128) (local $q v128) (local $v v128) (local $r v128) (local $s v128)
    (local $a0 v128) (local $b0 v128) (local $a1 v128) (local $b1 v128)
    (local $a2 v128) (local $b2 v128) (local $a3 v128) (local $b3 v128)
    (local.set $w1 (i32.add (local.get $w0) (local.get $ws)))
    (local.set $end (i32.add (local.get $w0) (local.get $kb)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $w0) (local.get $end)))
        (local.set $p (v128.load (local.get $w0)))
        (local.set $q (v128.load (local.get $w1)))
        (local.set $v (v128.load (local.get $px)))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $v) (local.get $p))))
        (local.set $b0 (f32x4.add (local.get $b0) (f32x4.mul (local.get $v) (local.get $q))))
        (local.set $v (v128.load offset=16 (local.get $px)))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $v) (local.get $p))))
        (local.set $b1 (f32x4.add (local.get $b1) (f32x4.mul (local.get $v) (local.get $q))))
        (local.set $v (v128.load offset=32 (local.get $px)))
        (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $v) (local.get $p))))
        (local.set $b2 (f32x4.add (local.get $b2) (f32x4.mul (local.get $v) (local.get $q))))
        (local.set $v (v128.load offset=48 (local.get $px)))
        (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $v) (local.get $p))))
        (local.set $b3 (f32x4.add (local.get $b3) (f32x4.mul (local.get $v) (local.get $q))))
        (local.set $px (i32.add (local.get $px) (i32.const 64)))
        (local.set $w0 (i32.add (local.get $w0) (i32.const 16)))
        (local.set $w1 (i32.add (local.get $w1) (i32.const 16)))
        (br $l)))
    ;; as in $t4x2: [Σa0, Σb0, Σa1, Σb1], then rows 2 and 3
    (local.set $r (f32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a0) (local.get $b0))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a0) (local.get $b0))))
    (local.set $s (f32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a1) (local.get $b1))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a1) (local.get $b1))))
    (local.set $r (f32x4.add (local.get $bv) (f32x4.add
      (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $r) (local.get $s))
      (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $r) (local.get $s)))))
    (v128.store64_lane 0 (local.get $y0) (local.get $r))
    (if (i32.gt_u (local.get $rows) (i32.const 1))
      (then (v128.store64_lane 1 (i32.add (local.get $y0) (local.get $ys)) (local.get $r))))
    (if (i32.le_u (local.get $rows) (i32.const 2)) (then (return)))
    (local.set $y0 (i32.add (local.get $y0) (i32.shl (local.get $ys) (i32.const 1))))
    (local.set $r (f32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a2) (local.get $b2))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a2) (local.get $b2))))
    (local.set $s (f32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a3) (local.get $b3))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a3) (local.get $b3))))
    (local.set $r (f32x4.add (local.get $bv) (f32x4.add
      (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $r) (local.get $s))
      (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $r) (local.get $s)))))
    (v128.store64_lane 0 (local.get $y0) (local.get $r))
    (if (i32.gt_u (local.get $rows) (i32.const 3))
      (then (v128.store64_lane 1 (i32.add (local.get $y0) (local.get $ys)) (local.get $r)))))

  ;; K bf16 at $src → K f32 at $dst
  (func $widen_bf16 (param $src i32) (param $dst i32) (param $K i32)
    (local $end i32) (local $all i32) (local $v v128)
    (local.set $end (i32.add (local.get $src) (i32.shl (i32.and (local.get $K) (i32.const -8)) (i32.const 1))))
    (local.set $all (i32.add (local.get $src) (i32.shl (local.get $K) (i32.const 1))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $v (v128.load (local.get $src)))
        (v128.store (local.get $dst)
          (i8x16.shuffle 16 17 0 1 18 19 2 3 20 21 4 5 22 23 6 7 (local.get $v) (v128.const i32x4 0 0 0 0)))
        (v128.store offset=16 (local.get $dst)
          (i8x16.shuffle 24 25 8 9 26 27 10 11 28 29 12 13 30 31 14 15 (local.get $v) (v128.const i32x4 0 0 0 0)))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
        (br $l)))
    (block $tDone
      (loop $t
        (br_if $tDone (i32.ge_u (local.get $src) (local.get $all)))
        (i32.store (local.get $dst) (i32.shl (i32.load16_u (local.get $src)) (i32.const 16)))
        (local.set $src (i32.add (local.get $src) (i32.const 2)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (br $t))))

  ;; K f16 at $src → K f32 at $dst (exact: ×2^112 on the rebiased pattern)
  (func $widen_f16 (param $src i32) (param $dst i32) (param $K i32)
    (local $end i32) (local $all i32) (local $v v128) (local $lo v128) (local $hi v128)
    (local.set $end (i32.add (local.get $src) (i32.shl (i32.and (local.get $K) (i32.const -8)) (i32.const 1))))
    (local.set $all (i32.add (local.get $src) (i32.shl (local.get $K) (i32.const 1))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $v (v128.load (local.get $src)))
        (local.set $lo (i16x8.shl (local.get $v) (i32.const 13)))
        (local.set $hi (v128.and (i16x8.shr_s (local.get $v) (i32.const 3)) (v128.const i16x8 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff)))
        (v128.store (local.get $dst) (f32x4.mul (v128.const f32x4 0x1p112 0x1p112 0x1p112 0x1p112)
          (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $lo) (local.get $hi))))
        (v128.store offset=16 (local.get $dst) (f32x4.mul (v128.const f32x4 0x1p112 0x1p112 0x1p112 0x1p112)
          (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $lo) (local.get $hi))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
        (br $l)))
    (block $tDone
      (loop $t
        (br_if $tDone (i32.ge_u (local.get $src) (local.get $all)))
        (f32.store (local.get $dst) (call $f16 (i32.load16_u (local.get $src))))
        (local.set $src (i32.add (local.get $src) (i32.const 2)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (br $t))))

  ;; The packed product for M > 1, N > 1. $kind: 0 = f32, 1 = bf16, 2 = f16 w. Blocks of 16 x rows:
  ;; each pair of w rows meets the whole block (four groups) while it is in L1, and w passes once per
  ;; block (at 16 rows, a few GB/s of DRAM traffic at full compute speed). N odd: the last pair is
  ;; (N - 2, N - 1), column N - 2 computed twice, to the same value.
  (func $gemm (param $x i32) (param $w i32) (param $b i32) (param $y i32) (param $M i32) (param $K i32) (param $N i32)
        (param $kind i32) (param $scratch i32)
    (local $xs i32) (local $ys i32) (local $wRow i32) (local $K4 i32) (local $kb i32) (local $pair i32)
    (local $m0 i32) (local $rows i32) (local $n i32) (local $g i32) (local $m i32) (local $wp i32) (local $ws i32)
    (local $xr i32) (local $yr i32) (local $bv v128)
    (local.set $xs (i32.shl (local.get $K) (i32.const 2)))
    (local.set $ys (i32.shl (local.get $N) (i32.const 2)))
    (local.set $wRow (i32.shl (local.get $K) (select (i32.const 2) (i32.const 1) (i32.eqz (local.get $kind)))))
    (local.set $K4 (i32.and (local.get $K) (i32.const -4)))
    (local.set $kb (i32.shl (local.get $K4) (i32.const 2)))
    (local.set $pair (i32.add (local.get $scratch) (i32.shl (local.get $K4) (i32.const 6))))
    (block $mDone
      (loop $mLoop
        (br_if $mDone (i32.ge_u (local.get $m0) (local.get $M)))
        (local.set $rows (i32.sub (local.get $M) (local.get $m0)))
        (if (i32.gt_u (local.get $rows) (i32.const 16)) (then (local.set $rows (i32.const 16))))
        (call $pack_x (i32.add (local.get $x) (i32.mul (local.get $m0) (local.get $xs))) (local.get $xs) (local.get $rows)
          (local.get $K4) (local.get $scratch))
        (local.set $n (i32.const 0))
        (loop $nLoop
          (if (i32.gt_u (i32.add (local.get $n) (i32.const 2)) (local.get $N))
            (then (local.set $n (i32.sub (local.get $N) (i32.const 2)))))
          (local.set $wp (i32.add (local.get $w) (i32.mul (local.get $n) (local.get $wRow))))
          (local.set $ws (local.get $wRow))
          (if (local.get $kind)
            (then
              (if (i32.eq (local.get $kind) (i32.const 1))
                (then
                  (call $widen_bf16 (local.get $wp) (local.get $pair) (local.get $K))
                  (call $widen_bf16 (i32.add (local.get $wp) (local.get $wRow)) (i32.add (local.get $pair) (local.get $xs)) (local.get $K)))
                (else
                  (call $widen_f16 (local.get $wp) (local.get $pair) (local.get $K))
                  (call $widen_f16 (i32.add (local.get $wp) (local.get $wRow)) (i32.add (local.get $pair) (local.get $xs)) (local.get $K))))
              (local.set $wp (local.get $pair))
              (local.set $ws (local.get $xs))))
          (local.set $bv (if (result v128) (local.get $b)
            (then (v128.load64_splat (i32.add (local.get $b) (i32.shl (local.get $n) (i32.const 2)))))
            (else (v128.const i32x4 0 0 0 0))))
          (local.set $g (i32.const 0))
          (loop $gLoop
            (call $t4x2p
              (i32.add (local.get $scratch) (i32.mul (local.get $g) (i32.shl (local.get $K4) (i32.const 2))))
              (local.get $wp) (local.get $ws) (local.get $kb) (local.get $bv)
              (i32.add (local.get $y) (i32.add (i32.mul (i32.add (local.get $m0) (local.get $g)) (local.get $ys))
                (i32.shl (local.get $n) (i32.const 2))))
              (local.get $ys) (i32.sub (local.get $rows) (local.get $g)))
            (local.set $g (i32.add (local.get $g) (i32.const 4)))
            (br_if $gLoop (i32.lt_u (local.get $g) (local.get $rows))))
          ;; the K % 4 tail, from x and the (widened) w rows as they lie
          (if (i32.lt_u (local.get $K4) (local.get $K))
            (then
              (local.set $m (i32.const 0))
              (loop $tLoop
                (local.set $xr (i32.add (local.get $x) (i32.mul (i32.add (local.get $m0) (local.get $m)) (local.get $xs))))
                (local.set $yr (i32.add (local.get $y) (i32.add (i32.mul (i32.add (local.get $m0) (local.get $m)) (local.get $ys))
                  (i32.shl (local.get $n) (i32.const 2)))))
                (f32.store (local.get $yr) (f32.add (f32.load (local.get $yr))
                  (call $tail (local.get $xr) (local.get $wp) (local.get $K4) (local.get $K))))
                (f32.store offset=4 (local.get $yr) (f32.add (f32.load offset=4 (local.get $yr))
                  (call $tail (local.get $xr) (i32.add (local.get $wp) (local.get $ws)) (local.get $K4) (local.get $K))))
                (local.set $m (i32.add (local.get $m) (i32.const 1)))
                (br_if $tLoop (i32.lt_u (local.get $m) (local.get $rows))))))
          (local.set $n (i32.add (local.get $n) (i32.const 2)))
          (br_if $nLoop (i32.lt_u (local.get $n) (local.get $N))))
        (local.set $m0 (i32.add (local.get $m0) (local.get $rows)))
        (br $mLoop))))

  ;; $kind: 0 = f32, 1 = bf16, 2 = f16 w. Decode (M = 1) streams w, and so does N = 1 (the tiles take
  ;; two columns) and, for half weights, a missing scratch: every row of x then reads all of w
  ;; again — correct, as slow as M decodes. f32 without a scratch takes the in-place tiles. f16 decode
  ;; uses 4·K bytes of the scratch, when there is one, for x·2^64.
  (func $matmul_any (param $x i32) (param $w i32) (param $b i32) (param $y i32) (param $M i32) (param $K i32) (param $N i32)
        (param $kind i32) (param $scratch i32)
    (local $m i32) (local $xr i32) (local $mode i32)
    (if (i32.or (i32.eqz (local.get $M)) (i32.eqz (local.get $N))) (then (return)))
    (if (i32.and (i32.eqz (local.get $kind))
          (i32.or (i32.eqz (local.get $scratch)) (i32.or (i32.eq (local.get $M) (i32.const 1)) (i32.eq (local.get $N) (i32.const 1)))))
      (then
        (call $matmul_inplace (local.get $x) (local.get $w) (local.get $b) (local.get $y) (local.get $M) (local.get $K) (local.get $N))
        (return)))
    (if (i32.or (i32.or (i32.eq (local.get $M) (i32.const 1)) (i32.eq (local.get $N) (i32.const 1))) (i32.eqz (local.get $scratch)))
      (then
        (loop $l
          (local.set $xr (i32.add (local.get $x) (i32.mul (local.get $m) (i32.shl (local.get $K) (i32.const 2)))))
          (local.set $mode (i32.sub (local.get $kind) (i32.const 1)))
          ;; f16 with a scratch: the row of x scaled once, not once per pair of w rows
          (if (i32.and (i32.eq (local.get $kind) (i32.const 2)) (i32.ne (local.get $scratch) (i32.const 0)))
            (then
              (call $prescale (local.get $xr) (local.get $scratch) (local.get $K))
              (local.set $xr (local.get $scratch))
              (local.set $mode (i32.const 2))))
          (call $gemv_half (local.get $xr) (local.get $w) (local.get $b)
            (i32.add (local.get $y) (i32.mul (local.get $m) (i32.shl (local.get $N) (i32.const 2)))) (local.get $K) (local.get $N)
            (local.get $mode))
          (local.set $m (i32.add (local.get $m) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $m) (local.get $M))))
        (return)))
    (call $gemm (local.get $x) (local.get $w) (local.get $b) (local.get $y) (local.get $M) (local.get $K) (local.get $N)
      (local.get $kind) (local.get $scratch)))

  (func (export "matmul_f32") (param $x i32) (param $w i32) (param $b i32) (param $y i32) (param $M i32) (param $K i32) (param $N i32)
        (param $scratch i32)
    (call $matmul_any (local.get $x) (local.get $w) (local.get $b) (local.get $y) (local.get $M) (local.get $K) (local.get $N)
      (i32.const 0) (local.get $scratch)))

  (func (export "matmul_bf16") (param $x i32) (param $w i32) (param $b i32) (param $y i32) (param $M i32) (param $K i32) (param $N i32)
        (param $scratch i32)
    (call $matmul_any (local.get $x) (local.get $w) (local.get $b) (local.get $y) (local.get $M) (local.get $K) (local.get $N)
      (i32.const 1) (local.get $scratch)))

  (func (export "matmul_f16") (param $x i32) (param $w i32) (param $b i32) (param $y i32) (param $M i32) (param $K i32) (param $N i32)
        (param $scratch i32)
    (call $matmul_any (local.get $x) (local.get $w) (local.get $b) (local.get $y) (local.get $M) (local.get $K) (local.get $N)
      (i32.const 2) (local.get $scratch)))
;; ---- attention ----------------------------------------------------------------------------------
  ;; The two halves of attention that touch the KV cache; masking and the softmax stay in TypeScript.
  ;; q holds `heads` query heads of width hd; query head h reads kv head h / group. Cache rows are
  ;; `stride` bytes apart (one row per position).

  ;; dot of `hd` floats at a and b
  (func $dot (param $a i32) (param $b i32) (param $hd i32) (result f32)
    (local $k i32) (local $kb i32) (local $acc v128)
    (local.set $kb (i32.shl (i32.and (local.get $hd) (i32.const -4)) (i32.const 2)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $k) (local.get $kb)))
        (local.set $acc (f32x4.add (local.get $acc)
          (f32x4.mul (v128.load (i32.add (local.get $a) (local.get $k))) (v128.load (i32.add (local.get $b) (local.get $k))))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $l)))
    (f32.add (call $hsum (local.get $acc))
      (call $tail (local.get $a) (local.get $b) (i32.and (local.get $hd) (i32.const -4)) (local.get $hd))))

  ;; scores[h * n + j] = q_h · k_j for the first n cache positions
  (func (export "attn_scores") (param $q i32) (param $k i32) (param $scores i32) (param $heads i32) (param $group i32)
        (param $hd i32) (param $n i32) (param $stride i32)
    (local $h i32) (local $j i32) (local $qh i32) (local $kh i32) (local $out i32)
    (local.set $out (local.get $scores))
    (block $hDone
      (loop $hLoop
        (br_if $hDone (i32.ge_u (local.get $h) (local.get $heads)))
        (local.set $qh (i32.add (local.get $q) (i32.shl (i32.mul (local.get $h) (local.get $hd)) (i32.const 2))))
        (local.set $kh (i32.add (local.get $k) (i32.shl (i32.mul (i32.div_u (local.get $h) (local.get $group)) (local.get $hd)) (i32.const 2))))
        (local.set $j (i32.const 0))
        (block $jDone
          (loop $jLoop
            (br_if $jDone (i32.ge_u (local.get $j) (local.get $n)))
            (f32.store (local.get $out) (call $dot (local.get $qh) (local.get $kh) (local.get $hd)))
            (local.set $out (i32.add (local.get $out) (i32.const 4)))
            (local.set $kh (i32.add (local.get $kh) (local.get $stride)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $jLoop)))
        (local.set $h (i32.add (local.get $h) (i32.const 1)))
        (br $hLoop))))

  ;; out_h = sum_j p[h * n + j] * v_j (out has heads × vd floats; zero weights are skipped)
  (func (export "attn_mix") (param $p i32) (param $v i32) (param $out i32) (param $heads i32) (param $group i32)
        (param $vd i32) (param $n i32) (param $stride i32)
    (local $h i32) (local $j i32) (local $i i32) (local $vb i32) (local $vb4 i32) (local $oh i32) (local $vh i32) (local $w f32) (local $wv v128)
    (local.set $vb (i32.shl (local.get $vd) (i32.const 2)))
    (local.set $vb4 (i32.shl (i32.and (local.get $vd) (i32.const -4)) (i32.const 2)))
    (block $hDone
      (loop $hLoop
        (br_if $hDone (i32.ge_u (local.get $h) (local.get $heads)))
        (local.set $oh (i32.add (local.get $out) (i32.mul (local.get $h) (local.get $vb))))
        (memory.fill (local.get $oh) (i32.const 0) (local.get $vb))
        (local.set $vh (i32.add (local.get $v) (i32.mul (i32.div_u (local.get $h) (local.get $group)) (local.get $vb))))
        (local.set $j (i32.const 0))
        (block $jDone
          (loop $jLoop
            (br_if $jDone (i32.ge_u (local.get $j) (local.get $n)))
            (local.set $w (f32.load (i32.add (local.get $p) (i32.shl (i32.add (i32.mul (local.get $h) (local.get $n)) (local.get $j)) (i32.const 2)))))
            (if (f32.ne (local.get $w) (f32.const 0))
              (then
                (local.set $wv (f32x4.splat (local.get $w)))
                (local.set $i (i32.const 0))
                (block $iDone
                  (loop $iLoop
                    (br_if $iDone (i32.ge_u (local.get $i) (local.get $vb4)))
                    (v128.store (i32.add (local.get $oh) (local.get $i))
                      (f32x4.add (v128.load (i32.add (local.get $oh) (local.get $i)))
                        (f32x4.mul (local.get $wv) (v128.load (i32.add (local.get $vh) (local.get $i))))))
                    (local.set $i (i32.add (local.get $i) (i32.const 16)))
                    (br $iLoop)))
                (block $tDone
                  (loop $tLoop
                    (br_if $tDone (i32.ge_u (local.get $i) (local.get $vb)))
                    (f32.store (i32.add (local.get $oh) (local.get $i))
                      (f32.add (f32.load (i32.add (local.get $oh) (local.get $i)))
                        (f32.mul (local.get $w) (f32.load (i32.add (local.get $vh) (local.get $i))))))
                    (local.set $i (i32.add (local.get $i) (i32.const 4)))
                    (br $tLoop)))))
            (local.set $vh (i32.add (local.get $vh) (local.get $stride)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $jLoop)))
        (local.set $h (i32.add (local.get $h) (i32.const 1)))
        (br $hLoop))))

  ;; ---- relative-position terms (Shaw et al. 2018; NEZHA, DeBERTa) -------------------------------
  ;; Table rows are gathered through an i32 index of one row per key slot (checked by the caller).
  ;; A table holds one slice per query head ($headBytes apart) or one slice every head shares
  ;; ($headBytes = 0). Separate from attn_scores / attn_mix so attention without them costs nothing.

  ;; y += w * x over $bytes bytes (a multiple of 4): four floats at a time, then the tail
  (func $axpy (param $w f32) (param $x i32) (param $y i32) (param $bytes i32)
    (local $i i32) (local $b4 i32) (local $wv v128)
    (local.set $wv (f32x4.splat (local.get $w)))
    (local.set $b4 (i32.and (local.get $bytes) (i32.const -16)))
    (block $vDone
      (loop $vLoop
        (br_if $vDone (i32.ge_u (local.get $i) (local.get $b4)))
        (v128.store (i32.add (local.get $y) (local.get $i))
          (f32x4.add (v128.load (i32.add (local.get $y) (local.get $i)))
            (f32x4.mul (local.get $wv) (v128.load (i32.add (local.get $x) (local.get $i))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $vLoop)))
    (block $tDone
      (loop $tLoop
        (br_if $tDone (i32.ge_u (local.get $i) (local.get $bytes)))
        (f32.store (i32.add (local.get $y) (local.get $i))
          (f32.add (f32.load (i32.add (local.get $y) (local.get $i)))
            (f32.mul (local.get $w) (f32.load (i32.add (local.get $x) (local.get $i))))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $tLoop))))

  ;; scores[h * n + j] += a_hj · table[index[j]]_h over hd floats, for the first n key slots.
  ;; The keys term: a = the query row ($aGroup 1, $aStride 0: one vector per head). The queries term:
  ;; a = the sequence's cached keys ($aGroup = heads / kvHeads, $aStride = one cache row in bytes).
  (func (export "attn_rel_scores") (param $a i32) (param $aGroup i32) (param $aStride i32) (param $table i32)
        (param $index i32) (param $rowBytes i32) (param $headBytes i32) (param $scores i32) (param $heads i32)
        (param $hd i32) (param $n i32)
    (local $h i32) (local $j i32) (local $ah i32) (local $th i32) (local $out i32)
    (local.set $out (local.get $scores))
    (block $hDone
      (loop $hLoop
        (br_if $hDone (i32.ge_u (local.get $h) (local.get $heads)))
        (local.set $ah (i32.add (local.get $a) (i32.shl (i32.mul (i32.div_u (local.get $h) (local.get $aGroup)) (local.get $hd)) (i32.const 2))))
        (local.set $th (i32.add (local.get $table) (i32.mul (local.get $h) (local.get $headBytes))))
        (local.set $j (i32.const 0))
        (block $jDone
          (loop $jLoop
            (br_if $jDone (i32.ge_u (local.get $j) (local.get $n)))
            (f32.store (local.get $out)
              (f32.add (f32.load (local.get $out))
                (call $dot (local.get $ah)
                  (i32.add (local.get $th)
                    (i32.mul (i32.load (i32.add (local.get $index) (i32.shl (local.get $j) (i32.const 2)))) (local.get $rowBytes)))
                  (local.get $hd))))
            (local.set $out (i32.add (local.get $out) (i32.const 4)))
            (local.set $ah (i32.add (local.get $ah) (local.get $aStride)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $jLoop)))
        (local.set $h (i32.add (local.get $h) (i32.const 1)))
        (br $hLoop))))

  ;; out_h += sum_j p[h * n + j] * table[index[j]]_h over vd floats (the values term; added to what
  ;; attn_mix wrote; zero weights are skipped)
  (func (export "attn_rel_mix") (param $p i32) (param $table i32) (param $index i32) (param $rowBytes i32)
        (param $headBytes i32) (param $out i32) (param $heads i32) (param $vd i32) (param $n i32)
    (local $h i32) (local $j i32) (local $vb i32) (local $oh i32) (local $th i32) (local $pj i32) (local $w f32)
    (local.set $vb (i32.shl (local.get $vd) (i32.const 2)))
    (local.set $pj (local.get $p))
    (block $hDone
      (loop $hLoop
        (br_if $hDone (i32.ge_u (local.get $h) (local.get $heads)))
        (local.set $oh (i32.add (local.get $out) (i32.mul (local.get $h) (local.get $vb))))
        (local.set $th (i32.add (local.get $table) (i32.mul (local.get $h) (local.get $headBytes))))
        (local.set $j (i32.const 0))
        (block $jDone
          (loop $jLoop
            (br_if $jDone (i32.ge_u (local.get $j) (local.get $n)))
            (local.set $w (f32.load (local.get $pj)))
            (if (f32.ne (local.get $w) (f32.const 0))
              (then
                (call $axpy (local.get $w)
                  (i32.add (local.get $th)
                    (i32.mul (i32.load (i32.add (local.get $index) (i32.shl (local.get $j) (i32.const 2)))) (local.get $rowBytes)))
                  (local.get $oh) (local.get $vb))))
            (local.set $pj (i32.add (local.get $pj) (i32.const 4)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $jLoop)))
        (local.set $h (i32.add (local.get $h) (i32.const 1)))
        (br $hLoop))))
)
