;; Hot kernels of the CPU backend, in WebAssembly SIMD (128-bit). Assembled by scripts/build-wasm.mjs
;; at `pnpm build` with the wabt npm package; no system toolchain. The memory is the rank's heap,
;; imported, so the kernels read and write the same bytes as the TypeScript side.
;;
;; matmul: y[m, n] = sum_k x[m, k] * w[n, k] (+ b[n]); x [M, K], w [N, K] row-major (nn.Linear's
;; [out, in]), y [M, N]. Decode (M = 1) is memory-bound: it streams w once, as two strictly
;; sequential streams (the two halves of the rows) — no interleaving of neighbouring rows. Prefill tiles two rows of x against four rows of w, so each w load (from cache) feeds two
;; rows. The k loops run 4 or 8 floats per step; a scalar tail covers K % 4.
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

  ;; one x row against four w rows
  (func $row4 (param $xr i32) (param $w0 i32) (param $rowBytes i32) (param $kBytes i32) (param $K i32) (param $K4 i32)
        (param $b i32) (param $n i32) (param $yr i32)
    (local $w1 i32) (local $w2 i32) (local $w3 i32) (local $k i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $xv v128)
    (local.set $w1 (i32.add (local.get $w0) (local.get $rowBytes)))
    (local.set $w2 (i32.add (local.get $w1) (local.get $rowBytes)))
    (local.set $w3 (i32.add (local.get $w2) (local.get $rowBytes)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $k) (local.get $kBytes)))
        (local.set $xv (v128.load (i32.add (local.get $xr) (local.get $k))))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $xv) (v128.load (i32.add (local.get $w0) (local.get $k))))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $xv) (v128.load (i32.add (local.get $w1) (local.get $k))))))
        (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $xv) (v128.load (i32.add (local.get $w2) (local.get $k))))))
        (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $xv) (v128.load (i32.add (local.get $w3) (local.get $k))))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $l)))
    (f32.store (local.get $yr)
      (f32.add (f32.add (call $hsum (local.get $a0)) (call $tail (local.get $xr) (local.get $w0) (local.get $K4) (local.get $K)))
               (call $bias (local.get $b) (local.get $n))))
    (f32.store offset=4 (local.get $yr)
      (f32.add (f32.add (call $hsum (local.get $a1)) (call $tail (local.get $xr) (local.get $w1) (local.get $K4) (local.get $K)))
               (call $bias (local.get $b) (i32.add (local.get $n) (i32.const 1)))))
    (f32.store offset=8 (local.get $yr)
      (f32.add (f32.add (call $hsum (local.get $a2)) (call $tail (local.get $xr) (local.get $w2) (local.get $K4) (local.get $K)))
               (call $bias (local.get $b) (i32.add (local.get $n) (i32.const 2)))))
    (f32.store offset=12 (local.get $yr)
      (f32.add (f32.add (call $hsum (local.get $a3)) (call $tail (local.get $xr) (local.get $w3) (local.get $K4) (local.get $K)))
               (call $bias (local.get $b) (i32.add (local.get $n) (i32.const 3))))))

  ;; two x rows against four w rows: yr0 / yr1 are the two output rows at column n
  (func $rows2x4 (param $xr0 i32) (param $xr1 i32) (param $w0 i32) (param $rowBytes i32) (param $kBytes i32) (param $K i32) (param $K4 i32)
        (param $b i32) (param $n i32) (param $yr0 i32) (param $yr1 i32)
    (local $w1 i32) (local $w2 i32) (local $w3 i32) (local $k i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $c0 v128) (local $c1 v128) (local $c2 v128) (local $c3 v128)
    (local $x0 v128) (local $x1 v128) (local $wv v128)
    (local.set $w1 (i32.add (local.get $w0) (local.get $rowBytes)))
    (local.set $w2 (i32.add (local.get $w1) (local.get $rowBytes)))
    (local.set $w3 (i32.add (local.get $w2) (local.get $rowBytes)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $k) (local.get $kBytes)))
        (local.set $x0 (v128.load (i32.add (local.get $xr0) (local.get $k))))
        (local.set $x1 (v128.load (i32.add (local.get $xr1) (local.get $k))))
        (local.set $wv (v128.load (i32.add (local.get $w0) (local.get $k))))
        (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $x0) (local.get $wv))))
        (local.set $c0 (f32x4.add (local.get $c0) (f32x4.mul (local.get $x1) (local.get $wv))))
        (local.set $wv (v128.load (i32.add (local.get $w1) (local.get $k))))
        (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $x0) (local.get $wv))))
        (local.set $c1 (f32x4.add (local.get $c1) (f32x4.mul (local.get $x1) (local.get $wv))))
        (local.set $wv (v128.load (i32.add (local.get $w2) (local.get $k))))
        (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $x0) (local.get $wv))))
        (local.set $c2 (f32x4.add (local.get $c2) (f32x4.mul (local.get $x1) (local.get $wv))))
        (local.set $wv (v128.load (i32.add (local.get $w3) (local.get $k))))
        (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $x0) (local.get $wv))))
        (local.set $c3 (f32x4.add (local.get $c3) (f32x4.mul (local.get $x1) (local.get $wv))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $l)))
    (f32.store (local.get $yr0) (f32.add (f32.add (call $hsum (local.get $a0)) (call $tail (local.get $xr0) (local.get $w0) (local.get $K4) (local.get $K))) (call $bias (local.get $b) (local.get $n))))
    (f32.store offset=4 (local.get $yr0) (f32.add (f32.add (call $hsum (local.get $a1)) (call $tail (local.get $xr0) (local.get $w1) (local.get $K4) (local.get $K))) (call $bias (local.get $b) (i32.add (local.get $n) (i32.const 1)))))
    (f32.store offset=8 (local.get $yr0) (f32.add (f32.add (call $hsum (local.get $a2)) (call $tail (local.get $xr0) (local.get $w2) (local.get $K4) (local.get $K))) (call $bias (local.get $b) (i32.add (local.get $n) (i32.const 2)))))
    (f32.store offset=12 (local.get $yr0) (f32.add (f32.add (call $hsum (local.get $a3)) (call $tail (local.get $xr0) (local.get $w3) (local.get $K4) (local.get $K))) (call $bias (local.get $b) (i32.add (local.get $n) (i32.const 3)))))
    (f32.store (local.get $yr1) (f32.add (f32.add (call $hsum (local.get $c0)) (call $tail (local.get $xr1) (local.get $w0) (local.get $K4) (local.get $K))) (call $bias (local.get $b) (local.get $n))))
    (f32.store offset=4 (local.get $yr1) (f32.add (f32.add (call $hsum (local.get $c1)) (call $tail (local.get $xr1) (local.get $w1) (local.get $K4) (local.get $K))) (call $bias (local.get $b) (i32.add (local.get $n) (i32.const 1)))))
    (f32.store offset=8 (local.get $yr1) (f32.add (f32.add (call $hsum (local.get $c2)) (call $tail (local.get $xr1) (local.get $w2) (local.get $K4) (local.get $K))) (call $bias (local.get $b) (i32.add (local.get $n) (i32.const 2)))))
    (f32.store offset=12 (local.get $yr1) (f32.add (f32.add (call $hsum (local.get $c3)) (call $tail (local.get $xr1) (local.get $w3) (local.get $K4) (local.get $K))) (call $bias (local.get $b) (i32.add (local.get $n) (i32.const 3))))))

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

  (func (export "matmul") (param $x i32) (param $w i32) (param $b i32) (param $y i32) (param $M i32) (param $K i32) (param $N i32)
    (local $n i32) (local $m i32) (local $K4 i32) (local $kBytes i32) (local $rowBytes i32) (local $outBytes i32) (local $w0 i32)
    (local.set $K4 (i32.and (local.get $K) (i32.const -4)))
    (local.set $kBytes (i32.shl (local.get $K4) (i32.const 2)))
    (local.set $rowBytes (i32.shl (local.get $K) (i32.const 2)))
    (local.set $outBytes (i32.shl (local.get $N) (i32.const 2)))
    ;; decode: a single row of x reads w once, in order
    (if (i32.eq (local.get $M) (i32.const 1))
      (then
        (call $gemv (local.get $x) (local.get $w) (local.get $b) (local.get $y) (local.get $K) (local.get $N))
        (return)))
    ;; blocks of four w rows
    (block $nDone
      (loop $nLoop
        (br_if $nDone (i32.gt_u (i32.add (local.get $n) (i32.const 4)) (local.get $N)))
        (local.set $w0 (i32.add (local.get $w) (i32.mul (local.get $n) (local.get $rowBytes))))
        (local.set $m (i32.const 0))
        (block $mDone
          (loop $mLoop
            (br_if $mDone (i32.gt_u (i32.add (local.get $m) (i32.const 2)) (local.get $M)))
            (call $rows2x4
              (i32.add (local.get $x) (i32.mul (local.get $m) (local.get $rowBytes)))
              (i32.add (local.get $x) (i32.mul (i32.add (local.get $m) (i32.const 1)) (local.get $rowBytes)))
              (local.get $w0) (local.get $rowBytes) (local.get $kBytes) (local.get $K) (local.get $K4) (local.get $b) (local.get $n)
              (i32.add (local.get $y) (i32.add (i32.mul (local.get $m) (local.get $outBytes)) (i32.shl (local.get $n) (i32.const 2))))
              (i32.add (local.get $y) (i32.add (i32.mul (i32.add (local.get $m) (i32.const 1)) (local.get $outBytes)) (i32.shl (local.get $n) (i32.const 2)))))
            (local.set $m (i32.add (local.get $m) (i32.const 2)))
            (br $mLoop)))
        (if (i32.lt_u (local.get $m) (local.get $M))
          (then
            (call $row4
              (i32.add (local.get $x) (i32.mul (local.get $m) (local.get $rowBytes)))
              (local.get $w0) (local.get $rowBytes) (local.get $kBytes) (local.get $K) (local.get $K4) (local.get $b) (local.get $n)
              (i32.add (local.get $y) (i32.add (i32.mul (local.get $m) (local.get $outBytes)) (i32.shl (local.get $n) (i32.const 2)))))))
        (local.set $n (i32.add (local.get $n) (i32.const 4)))
        (br $nLoop)))
    ;; the remaining N % 4 rows
    (block $rDone
      (loop $rLoop
        (br_if $rDone (i32.ge_u (local.get $n) (local.get $N)))
        (local.set $w0 (i32.add (local.get $w) (i32.mul (local.get $n) (local.get $rowBytes))))
        (local.set $m (i32.const 0))
        (block $mDone2
          (loop $mLoop2
            (br_if $mDone2 (i32.ge_u (local.get $m) (local.get $M)))
            (call $row1
              (i32.add (local.get $x) (i32.mul (local.get $m) (local.get $rowBytes)))
              (local.get $w0) (local.get $kBytes) (local.get $K) (local.get $K4) (local.get $b) (local.get $n)
              (i32.add (local.get $y) (i32.add (i32.mul (local.get $m) (local.get $outBytes)) (i32.shl (local.get $n) (i32.const 2)))))
            (local.set $m (i32.add (local.get $m) (i32.const 1)))
            (br $mLoop2)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $rLoop))))
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
)
