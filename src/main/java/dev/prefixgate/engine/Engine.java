package dev.prefixgate.engine;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Continuous-batching generation over one {@link BloomModel}: rows join between steps and leave
 * when done, and every row carries its own tenant's prefix.
 *
 * <p>Data flow per iteration, on the single engine thread:
 *
 * <ol>
 *   <li>admit waiting requests (round-robin across tenants) while rows and the KV token budget
 *       allow;
 *   <li>prefill the newcomers as one left-padded batch: past = their prefixes right-aligned, input
 *       = their prompts right-aligned; sample each one's first token;
 *   <li>rebuild the running batch's KV when rows joined or left (copy each row's columns,
 *       right-aligned, into the spare buffers);
 *   <li>one decode step for all rows: one ONNX Runtime run, one token per row.
 * </ol>
 *
 * <p>Layout: the batch KV is {@code (rows, n_head, T, head_dim)} per layer, each row right-aligned
 * with zero padding in front and mask 0 there. BLOOM's ALiBi positions come from the cumulative
 * mask, so padding changes nothing. Two buffer sets alternate: the step reads past from one and ORT
 * writes present into the other (pinned outputs), so the hot loop allocates nothing and copies
 * nothing.
 *
 * <p>Threading: {@link #submit} may be called from any thread. Listener callbacks run on the engine
 * thread (see {@link TokenListener}).
 */
public final class Engine implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(Engine.class.getName());
  private static final float[] ZEROS = new float[4096];

  private final BloomModel model;
  private final EngineOptions options;
  private final ModelConfig cfg;
  private final GraphContract contract;
  private final Scheduler scheduler;
  private final Sampler sampler;
  private final Thread thread;
  private volatile boolean running = true;

  private final List<Sequence> rows = new ArrayList<>(); // running batch, in row order
  private List<Sequence> newcomers = List.of(); // admitted this iteration, not yet in rows
  private int pastLen; // T, KV columns in the running batch
  private KvArena past = new KvArena(); // (rows, n_head, T, head_dim) per layer, read by the step
  private KvArena spare = new KvArena(); // written by the step (present) or a rebuild
  private final KvArena prefillPast = new KvArena(); // (newcomers, n_head, Pmax, head_dim)
  private final KvArena prefillPresent =
      new KvArena(); // (newcomers, n_head, Pmax + Smax, head_dim)
  private FloatBuffer logits = floats(1); // (rows, seq, vocab)
  private LongBuffer ids = longs(1); // (rows, seq)
  private LongBuffer maskBuf = longs(1); // (rows, past + seq)

  private final AtomicLong steps = new AtomicLong();
  private final AtomicLong generatedTokens = new AtomicLong();
  private final AtomicLong prefillTokens = new AtomicLong();
  private volatile int runningRows;

  public Engine(BloomModel model, EngineOptions options) {
    this.model = model;
    this.options = options;
    this.cfg = model.config();
    this.contract = model.contract();
    this.scheduler = new Scheduler(options.maxQueue());
    this.sampler = new Sampler(cfg.vocabSize());
    past.ensure(cfg.nLayer(), 1);
    spare.ensure(cfg.nLayer(), 1);
    prefillPresent.ensure(cfg.nLayer(), 1);
    this.thread = new Thread(this::loop, "prefixgate-engine");
    thread.setDaemon(true);
    thread.start();
  }

  /** Cancels a submitted request; its row is freed at the next step. Any thread. */
  public static final class Handle {
    private final Sequence seq;

    private Handle(Sequence seq) {
      this.seq = seq;
    }

    public void cancel() {
      seq.cancelled = true;
    }
  }

  /** Counters for metrics; read from any thread. */
  public record Stats(
      int queued, int running, long steps, long generatedTokens, long prefillTokens) {}

  public Stats stats() {
    return new Stats(
        scheduler.size(), runningRows, steps.get(), generatedTokens.get(), prefillTokens.get());
  }

  public BloomModel model() {
    return model;
  }

  public EngineOptions options() {
    return options;
  }

  /**
   * Queues a request.
   *
   * @throws IllegalArgumentException when the request cannot fit this model or the context limit
   * @throws QueueFullException when the admission queue is full
   */
  public Handle submit(GenerationRequest request, TokenListener listener) {
    if (!running) throw new IllegalStateException("engine is closed");
    if (request.reservedTokens() > options.maxContext()) {
      throw new IllegalArgumentException(
          "prefix ("
              + request.prefixLength()
              + ") + prompt ("
              + request.promptIds().length
              + ") + max_new_tokens ("
              + request.params().maxNewTokens()
              + ") = "
              + request.reservedTokens()
              + " tokens exceeds the context limit of "
              + options.maxContext());
    }
    for (int id : request.promptIds()) {
      if (id < 0 || id >= cfg.vocabSize()) {
        throw new IllegalArgumentException(
            "token id " + id + " not in [0, " + cfg.vocabSize() + ")");
      }
    }
    PrefixKv prefix = request.prefix();
    if (prefix != null && prefix.layers() != cfg.nLayer()) {
      throw new IllegalArgumentException(
          "prefix has " + prefix.layers() + " layers, the model has " + cfg.nLayer());
    }
    Long seed = request.params().seed();
    long s = seed != null ? seed : ThreadLocalRandom.current().nextLong();
    Sequence seq = new Sequence(request, listener, model.tokenizer(), s);
    scheduler.add(seq);
    return new Handle(seq);
  }

  @Override
  public void close() {
    running = false;
    scheduler.wake();
    try {
      thread.join(30_000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  // ---- engine thread ----

  private void loop() {
    while (running) {
      try {
        iterate();
      } catch (InterruptedException e) {
        break;
      } catch (Throwable t) {
        LOG.log(Level.SEVERE, "engine step failed; failing the running batch", t);
        failRows(new ArrayList<>(rows), t);
        failRows(newcomers, t);
        newcomers = List.of();
        rows.clear();
        pastLen = 0;
        runningRows = 0;
      }
    }
    for (Sequence s : scheduler.drain()) finish(s, FinishReason.CANCELLED, null);
    for (Sequence s : rows) {
      if (!s.done) finish(s, FinishReason.CANCELLED, null);
    }
    rows.clear();
  }

  private void iterate() throws InterruptedException, OrtException {
    for (Sequence s : scheduler.removeCancelled()) finish(s, FinishReason.CANCELLED, null);
    boolean changed = false;
    for (Sequence s : rows) {
      if (s.cancelled && !s.done) finish(s, FinishReason.CANCELLED, null);
      changed |= s.done;
    }
    newcomers = admit();
    if (newcomers.isEmpty()) {
      if (changed) rebuild(List.of(), 0);
    } else {
      for (List<Sequence> chunk : prefillChunks(newcomers)) {
        int width = prefill(chunk);
        rebuild(chunk, width);
      }
    }
    runningRows = rows.size();
    if (rows.isEmpty()) {
      scheduler.awaitWork(50);
      return;
    }
    decode();
  }

  private List<Sequence> admit() {
    List<Sequence> out = new ArrayList<>();
    long reserved = 0;
    for (Sequence s : rows) {
      if (!s.done) reserved += s.request.reservedTokens();
    }
    int live = (int) rows.stream().filter(s -> !s.done).count();
    while (live + out.size() < options.maxBatchRows()) {
      final long used = reserved;
      Sequence s =
          scheduler.poll(
              q -> q.cancelled || used + q.request.reservedTokens() <= options.maxBatchTokens());
      if (s == null) break;
      if (s.cancelled) {
        finish(s, FinishReason.CANCELLED, null);
        continue;
      }
      s.admitNanos = System.nanoTime();
      reserved += s.request.reservedTokens();
      out.add(s);
    }
    return out;
  }

  /** Splits newcomers so that each prefill run stays within the padded-token limit. */
  private List<List<Sequence>> prefillChunks(List<Sequence> admitted) {
    List<List<Sequence>> chunks = new ArrayList<>();
    List<Sequence> cur = new ArrayList<>();
    int pmax = 0;
    int smax = 0;
    for (Sequence s : admitted) {
      int p = Math.max(pmax, s.request.prefixLength());
      int sl = Math.max(smax, s.request.promptIds().length);
      if (!cur.isEmpty() && (long) (cur.size() + 1) * (p + sl) > options.maxPrefillTokens()) {
        chunks.add(cur);
        cur = new ArrayList<>();
        p = s.request.prefixLength();
        sl = s.request.promptIds().length;
      }
      cur.add(s);
      pmax = p;
      smax = sl;
    }
    if (!cur.isEmpty()) chunks.add(cur);
    return chunks;
  }

  /**
   * Runs prefix + prompt for newcomers and samples their first tokens. On an ONNX error only these
   * newcomers fail; the running batch is untouched.
   *
   * @return the KV width (Pmax + Smax) of {@link #prefillPresent}
   */
  private int prefill(List<Sequence> chunk) {
    int b = chunk.size();
    int pmax = 0;
    int smax = 0;
    for (Sequence s : chunk) {
      pmax = Math.max(pmax, s.request.prefixLength());
      smax = Math.max(smax, s.request.promptIds().length);
    }
    int heads = cfg.nHead();
    int d = cfg.headDim();
    int width = pmax + smax;
    int vocab = cfg.vocabSize();
    prefillPast.ensure(cfg.nLayer(), b * heads * pmax * d);
    prefillPresent.ensure(cfg.nLayer(), b * heads * width * d);
    ids = ensure(ids, b * smax);
    maskBuf = ensure(maskBuf, b * width);
    logits = ensure(logits, b * smax * vocab);
    for (int r = 0; r < b; r++) {
      Sequence s = chunk.get(r);
      int[] prompt = s.request.promptIds();
      int p = s.request.prefixLength();
      for (int c = 0; c < smax - prompt.length; c++) ids.put(r * smax + c, cfg.padTokenId());
      for (int c = 0; c < prompt.length; c++)
        ids.put(r * smax + smax - prompt.length + c, prompt[c]);
      s.len = 0;
      for (int c = 0; c < width; c++) {
        boolean prefixCol = c >= pmax - p && c < pmax;
        boolean promptCol = c >= width - prompt.length;
        maskBuf.put(r * width + c, prefixCol || promptCol ? 1 : 0);
        if (c >= pmax - p) s.appendMask((byte) (prefixCol || promptCol ? 1 : 0));
      }
      for (int layer = 0; layer < cfg.nLayer(); layer++) {
        for (int kv = 0; kv < 2; kv++) {
          FloatBuffer dst = kv == 0 ? prefillPast.keys[layer] : prefillPast.values[layer];
          FloatBuffer src =
              s.request.prefix() == null
                  ? null
                  : kv == 0 ? s.request.prefix().key(layer) : s.request.prefix().value(layer);
          for (int h = 0; h < heads; h++) {
            int rowStart = (r * heads + h) * pmax * d;
            zero(dst, rowStart, (pmax - p) * d);
            if (p > 0) dst.put(rowStart + (pmax - p) * d, src, h * p * d, p * d);
          }
        }
      }
      s.slot = r;
    }
    try {
      Map<String, OnnxTensor> in = new HashMap<>();
      Map<String, OnnxTensor> out = new HashMap<>();
      try {
        in.put(GraphContract.INPUT_IDS, tensor(ids, b, smax));
        in.put(GraphContract.ATTENTION_MASK, tensor(maskBuf, b, width));
        out.put(GraphContract.LOGITS, tensor(logits, b, smax, vocab));
        bindKv(in, out, prefillPast, pmax, prefillPresent, width, b);
        model.run(in, out);
      } finally {
        closeAll(in);
        closeAll(out);
      }
    } catch (OrtException | RuntimeException e) {
      LOG.log(Level.SEVERE, "prefill failed for " + b + " requests", e);
      failRows(chunk, e);
      return width;
    }
    steps.incrementAndGet();
    for (int r = 0; r < b; r++) {
      Sequence s = chunk.get(r);
      prefillTokens.addAndGet(s.request.promptIds().length);
      accept(s, (r * smax + smax - 1) * vocab);
    }
    return width;
  }

  /**
   * Builds the next running batch in {@link #spare}: surviving rows (from {@link #past}) then
   * {@code joined} (from {@link #prefillPresent}, width {@code newWidth}), each right-aligned.
   */
  private void rebuild(List<Sequence> joined, int newWidth) {
    List<Sequence> next = new ArrayList<>();
    for (int i = 0; i < rows.size(); i++) {
      Sequence s = rows.get(i);
      s.slot = i;
      if (!s.done) next.add(s);
    }
    int firstNew = next.size();
    for (Sequence s : joined) {
      if (!s.done) next.add(s);
    }
    int t = 0;
    for (Sequence s : next) t = Math.max(t, s.len);
    int heads = cfg.nHead();
    int d = cfg.headDim();
    spare.ensure(cfg.nLayer(), next.size() * heads * t * d);
    for (int layer = 0; layer < cfg.nLayer(); layer++) {
      for (int kv = 0; kv < 2; kv++) {
        FloatBuffer dst = kv == 0 ? spare.keys[layer] : spare.values[layer];
        FloatBuffer fromPast = kv == 0 ? past.keys[layer] : past.values[layer];
        FloatBuffer fromNew = kv == 0 ? prefillPresent.keys[layer] : prefillPresent.values[layer];
        for (int r = 0; r < next.size(); r++) {
          Sequence s = next.get(r);
          boolean isNew = r >= firstNew;
          FloatBuffer src = isNew ? fromNew : fromPast;
          int srcT = isNew ? newWidth : pastLen;
          for (int h = 0; h < heads; h++) {
            int srcStart = ((s.slot * heads + h) * srcT + srcT - s.len) * d;
            int dstRow = (r * heads + h) * t * d;
            zero(dst, dstRow, (t - s.len) * d);
            dst.put(dstRow + (t - s.len) * d, src, srcStart, s.len * d);
          }
        }
      }
    }
    swap();
    rows.clear();
    rows.addAll(next);
    pastLen = t;
  }

  /** One token for every running row. */
  private void decode() throws OrtException {
    int b = rows.size();
    int t = pastLen;
    int width = t + 1;
    int vocab = cfg.vocabSize();
    ids = ensure(ids, b);
    maskBuf = ensure(maskBuf, b * width);
    logits = ensure(logits, b * vocab);
    spare.ensure(cfg.nLayer(), b * cfg.nHead() * width * cfg.headDim());
    for (int r = 0; r < b; r++) {
      Sequence s = rows.get(r);
      ids.put(r, s.lastToken);
      int pad = t - s.len;
      for (int c = 0; c < pad; c++) maskBuf.put(r * width + c, 0);
      for (int c = 0; c < s.len; c++) maskBuf.put(r * width + pad + c, s.mask[c]);
      maskBuf.put(r * width + t, 1);
    }
    Map<String, OnnxTensor> in = new HashMap<>();
    Map<String, OnnxTensor> out = new HashMap<>();
    try {
      in.put(GraphContract.INPUT_IDS, tensor(ids, b, 1));
      in.put(GraphContract.ATTENTION_MASK, tensor(maskBuf, b, width));
      out.put(GraphContract.LOGITS, tensor(logits, b, 1, vocab));
      bindKv(in, out, past, t, spare, width, b);
      model.run(in, out);
    } finally {
      closeAll(in);
      closeAll(out);
    }
    swap();
    pastLen = width;
    steps.incrementAndGet();
    for (int r = 0; r < b; r++) {
      Sequence s = rows.get(r);
      s.appendMask((byte) 1);
      if (!s.done) accept(s, r * vocab);
    }
  }

  /** Samples one token for {@code s} from the logits at {@code offset} and reports it. */
  private void accept(Sequence s, int offset) {
    if (s.cancelled) {
      finish(s, FinishReason.CANCELLED, null);
      return;
    }
    SamplingParams p = s.request.params();
    Sampler.Pick pick = sampler.pick(logits, offset, p, s.seen, s.seenCount, s.rng);
    int token = pick.token();
    if (s.firstTokenNanos < 0) s.firstTokenNanos = System.nanoTime();
    s.generated++;
    s.seen[s.seenCount++] = token;
    s.lastToken = token;
    generatedTokens.incrementAndGet();
    boolean eos = token == cfg.eosTokenId() && !p.ignoreEos();
    String text = eos ? "" : s.stop.feed(s.detokenizer.next(token));
    try {
      s.listener.onToken(token, text, pick.logprob());
    } catch (RuntimeException e) {
      LOG.log(Level.WARNING, "token listener failed; cancelling its sequence", e);
      s.cancelled = true;
    }
    if (s.cancelled) {
      finish(s, FinishReason.CANCELLED, null);
    } else if (eos || s.stop.matched()) {
      finish(s, FinishReason.STOP, null);
    } else if (s.generated >= p.maxNewTokens()) {
      finish(s, FinishReason.LENGTH, null);
    }
  }

  private void finish(Sequence s, FinishReason reason, String error) {
    if (s.done) return;
    s.done = true;
    String trailing = "";
    if (reason != FinishReason.ERROR && !s.stop.matched()) {
      trailing = s.stop.feed(s.detokenizer.flush());
      if (!s.stop.matched()) trailing += s.stop.release();
    }
    long now = System.nanoTime();
    Completion c =
        new Completion(
            reason,
            trailing,
            s.request.promptIds().length,
            s.request.prefixLength(),
            s.generated,
            (s.admitNanos == 0 ? now : s.admitNanos) - s.submitNanos,
            s.firstTokenNanos < 0 ? -1 : s.firstTokenNanos - s.submitNanos,
            now - s.submitNanos,
            error);
    try {
      s.listener.onComplete(c);
    } catch (RuntimeException e) {
      LOG.log(Level.WARNING, "completion listener failed", e);
    }
  }

  private void failRows(List<Sequence> seqs, Throwable cause) {
    String message = "generation failed: " + cause.getMessage();
    for (Sequence s : seqs) finish(s, FinishReason.ERROR, message);
  }

  private void bindKv(
      Map<String, OnnxTensor> in,
      Map<String, OnnxTensor> out,
      KvArena from,
      int fromT,
      KvArena to,
      int toT,
      int b)
      throws OrtException {
    int heads = cfg.nHead();
    int d = cfg.headDim();
    for (int layer = 0; layer < cfg.nLayer(); layer++) {
      in.put(contract.pastKey(layer), tensor(from.keys[layer], b, heads, fromT, d));
      in.put(contract.pastValue(layer), tensor(from.values[layer], b, heads, fromT, d));
      out.put(contract.presentKey(layer), tensor(to.keys[layer], b, heads, toT, d));
      out.put(contract.presentValue(layer), tensor(to.values[layer], b, heads, toT, d));
    }
  }

  private void swap() {
    KvArena tmp = past;
    past = spare;
    spare = tmp;
  }

  private OnnxTensor tensor(FloatBuffer buf, long... shape) throws OrtException {
    return OnnxTensor.createTensor(model.env(), buf.slice(0, count(shape)), shape);
  }

  private OnnxTensor tensor(LongBuffer buf, long... shape) throws OrtException {
    return OnnxTensor.createTensor(model.env(), buf.slice(0, count(shape)), shape);
  }

  private static int count(long[] shape) {
    long n = 1;
    for (long s : shape) n *= s;
    return Math.toIntExact(n);
  }

  private static void closeAll(Map<String, OnnxTensor> tensors) {
    for (OnnxTensor t : tensors.values()) t.close();
  }

  private static void zero(FloatBuffer buf, int index, int n) {
    while (n > 0) {
      int k = Math.min(n, ZEROS.length);
      buf.put(index, ZEROS, 0, k);
      index += k;
      n -= k;
    }
  }

  static FloatBuffer floats(int n) {
    return ByteBuffer.allocateDirect(4 * Math.max(n, 1))
        .order(ByteOrder.nativeOrder())
        .asFloatBuffer();
  }

  private static LongBuffer longs(int n) {
    return ByteBuffer.allocateDirect(8 * Math.max(n, 1))
        .order(ByteOrder.nativeOrder())
        .asLongBuffer();
  }

  private static FloatBuffer ensure(FloatBuffer buf, int n) {
    return buf.capacity() >= n ? buf : floats(grow(buf.capacity(), n));
  }

  private static LongBuffer ensure(LongBuffer buf, int n) {
    return buf.capacity() >= n ? buf : longs(grow(buf.capacity(), n));
  }

  private static int grow(int have, int need) {
    return (int) Math.min(Integer.MAX_VALUE - 8, Math.max(need, (long) have * 3 / 2));
  }

  /**
   * Per-layer key and value buffers that only grow. Contents are not preserved on growth: every
   * user overwrites the region it reads next (a run's outputs, or a rebuild).
   */
  private static final class KvArena {
    FloatBuffer[] keys = new FloatBuffer[0];
    FloatBuffer[] values = new FloatBuffer[0];

    void ensure(int layers, int floats) {
      if (keys.length != layers) {
        keys = new FloatBuffer[layers];
        values = new FloatBuffer[layers];
      }
      for (int i = 0; i < layers; i++) {
        keys[i] = keys[i] == null ? floats(floats) : Engine.ensure(keys[i], floats);
        values[i] = values[i] == null ? floats(floats) : Engine.ensure(values[i], floats);
      }
    }
  }
}
