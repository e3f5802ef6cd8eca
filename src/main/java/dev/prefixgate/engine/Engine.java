package dev.prefixgate.engine;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
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
 *   <li>admit waiting requests (round-robin across tenants, a fair share of rows per tenant while
 *       others wait) while rows, the KV token budget and the memory budget allow;
 *   <li>prefill the newcomers as one left-padded batch: past = their prefixes right-aligned, input
 *       = their prompts right-aligned; sample each one's first token. The prompt columns go through
 *       ORT in one or more runs, each extending the KV of the previous one: while rows are
 *       decoding, one run of at most {@code prefill_step_tokens} per decode step (chunked prefill,
 *       so running streams keep emitting), otherwise as few runs as the per-run token limit allows.
 *       New requests are admitted once the current prefill is done;
 *   <li>rebuild the running batch's KV when rows joined or left (copy each row's columns,
 *       right-aligned, into the spare buffers; a joining row brings only its prefix and prompt
 *       columns, never the padding its prefill batch needed);
 *   <li>one decode step for all rows: one ONNX Runtime run, one token per row.
 * </ol>
 *
 * <p>Layout: the batch KV is {@code (rows, n_head, T, head_dim)} per layer, each row right-aligned
 * with zero padding in front and mask 0 there; inside a row every column is attended. BLOOM's ALiBi
 * positions come from the cumulative mask, so padding changes nothing. Two buffer sets alternate:
 * the step reads past from one and ORT writes present into the other (pinned outputs), so a decode
 * step allocates and copies no KV. (It still builds a few small maps and ORT tensor wrappers per
 * step.)
 *
 * <p>Memory: every buffer comes from one {@link EngineMemory} budget. Admission plans each request
 * against it (both KV arenas at the batch's widest reservation, plus prefill buffers); a request
 * that could never fit is refused at {@link #submit}. A buffer that still cannot be had while
 * newcomers are prefilled or joined fails those newcomers only, with the reason; running rows go
 * on. Logits are read at one position per row: graphs that compute the LM head only there ({@link
 * GraphContract.LogitsLayout#LAST_POSITION}) get a {@code (rows, 1, vocab)} buffer; for
 * all-positions graphs prefill runs are cut so that their logits stay under {@link
 * #PREFILL_LOGITS_BYTES}.
 *
 * <p>Threading: {@link #submit} may be called from any thread. Listener callbacks run on the engine
 * thread (see {@link TokenListener}).
 */
public final class Engine implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(Engine.class.getName());
  private static final float[] ZEROS = new float[4096];

  /** Cap on one prefill run's logits when the graph writes every position. */
  static final long PREFILL_LOGITS_BYTES = 64L << 20;

  /** Tokens per page of the paged layout's pool ({@link GraphContract.KvLayout#PAGED}). */
  static final int PAGE_TOKENS = 8;

  /** Idle time after which the engine's buffers are handed back (see {@link #idle}). */
  static final long IDLE_RELEASE_NANOS = 2_000_000_000L;

  private final BloomModel model;
  private final EngineOptions options;
  private final ModelConfig cfg;
  private final GraphContract contract;
  private final Scheduler scheduler;
  private final Sampler sampler;
  private final EngineMemory memory;
  private final long kvBytesPerToken; // K and V of every layer for one column of one row
  // One paged decode run's fixed cost (every weight read once), in row-columns of attention: three
  // hidden sizes, measured on the 560m-shaped model (see DecodeGroups)
  private final long decodeRunCost;
  private final Thread thread;
  private volatile boolean running = true;

  private final List<Sequence> rows = new ArrayList<>(); // running batch, in row order
  private List<Sequence> newcomers = List.of(); // admitted this iteration, not yet in rows
  private int pastLen; // T, KV columns in the running batch
  private KvArena past; // (rows, n_head, T, head_dim) per layer, read by the step
  private KvArena spare; // written by the step (present) or a rebuild
  private KvArena prefillIn; // (newcomers, n_head, <= width, head_dim): past, then the result
  private KvArena prefillOut; // (newcomers, n_head, width, head_dim): present of a prefill run
  private final ArrayDeque<List<Sequence>> prefillQueue = new ArrayDeque<>(); // admitted, waiting
  private List<Sequence> prefilling; // the newcomers being prefilled, or null
  private int prefillPmax; // prefix columns of that prefill, right-aligned
  private int prefillSmax; // prompt columns of that prefill, right-aligned
  private int prefillWidth; // Pmax + Smax; when complete, its present is in prefillIn
  private int prefillSegment; // most prompt columns one run may take (buffer sizes)
  private int prefillDone; // prompt columns already run
  private FloatBuffer logits; // (rows, positions, vocab)
  private LongBuffer ids; // (rows, seq)
  private LongBuffer maskBuf; // (rows, past + seq)
  // Slot layouts (GraphContract.KvLayout.SLOTS, APPEND): one arena, rows.get(i) in slot i; with
  // SLOTS ONNX Runtime writes new columns in place, with APPEND the engine copies them in.
  private final boolean slotLayout;
  private final boolean appendLayout;
  private FloatBuffer newKv; // APPEND: the run's new K/V, per layer and kind (b, n_head, seq, d)
  private final SlotArena slotKv;
  private final IntBuffer seqlens; // (rows) int32: each row's length after the run, minus 1
  private final IntBuffer totalLen; // scalar int32: the longest row's length after the run
  // Paged layout (GraphContract.KvLayout.PAGED): one pool of pages per layer and kind; a row holds
  // the pages of its tokens, taken as it grows and given back when it leaves. Nothing moves.
  private final boolean pagedLayout;
  private final PagePool pool;
  private LongBuffer blockTable; // PAGED: (rows, pages per row), each row's pages in token order
  private volatile long kvHeldBytes; // KV buffers the engine holds, whatever the layout
  private volatile long kvLiveBytes; // the running and prefilling rows' tokens x bytes per token

  private final AtomicLong steps = new AtomicLong();
  private final AtomicLong splitDecodeSteps = new AtomicLong();
  private final AtomicLong kvRemakes = new AtomicLong();
  private final AtomicLong kvRemakeNanos = new AtomicLong();
  private final AtomicLong backgroundPages = new AtomicLong();
  // A pool growth at least this large is allocated off the engine thread while rows run; below it,
  // in place (on 560m, 128 MiB of fresh memory takes about 90 ms on an idle machine)
  private volatile long backgroundGrowthBytes = 128L << 20;
  // KV buffers (the page pool, the concat arenas) over reserved regions where the platform has
  // them; false once a reservation was refused (and from then on)
  private volatile boolean reservedRegions = true;
  // Allocates a larger KV pool while the engine thread goes on decoding (made on first use)
  private ExecutorService allocator;
  private final AtomicLong generatedTokens = new AtomicLong();
  private final AtomicLong prefillTokens = new AtomicLong();
  private volatile int runningRows;
  private volatile long idleReleaseNanos = IDLE_RELEASE_NANOS;
  private long idleSinceNanos = -1; // engine thread: when the batch and the queue last emptied

  public Engine(BloomModel model, EngineOptions options) {
    this.model = model;
    this.options = options;
    this.cfg = model.config();
    this.contract = model.contract();
    this.scheduler = new Scheduler(options.maxQueue(), options.tenantQueueCap());
    this.sampler = new Sampler(cfg.vocabSize());
    long budget =
        options.memoryBudgetBytes() > 0
            ? options.memoryBudgetBytes()
            : EngineMemory.derivedBudget();
    this.memory = new EngineMemory(budget);
    this.past = new KvArena("running KV");
    this.spare = new KvArena("running KV");
    this.prefillIn = new KvArena("prefill KV");
    this.prefillOut = new KvArena("prefill KV");
    this.slotLayout = contract.kvLayout().slotted();
    this.appendLayout = contract.kvLayout() == GraphContract.KvLayout.APPEND;
    this.slotKv = slotLayout ? new SlotArena() : null;
    this.pagedLayout = contract.kvLayout() == GraphContract.KvLayout.PAGED;
    this.pool = pagedLayout ? new PagePool(PAGE_TOKENS) : null;
    this.decodeRunCost = 3L * cfg.hiddenSize();
    this.seqlens = intBuffer(options.maxBatchRows());
    this.totalLen = intBuffer(1);
    this.kvBytesPerToken =
        Math.multiplyExact(
            Math.multiplyExact(2L * cfg.nLayer(), (long) cfg.nHead() * cfg.headDim()),
            (long) Float.BYTES);
    LOG.info(
        () ->
            "engine memory budget "
                + EngineMemory.mib(budget)
                + " MiB"
                + (options.memoryBudgetBytes() > 0
                    ? ""
                    : " (80% of the JVM's direct-memory limit of "
                        + EngineMemory.mib(EngineMemory.directMemoryLimit())
                        + " MiB)")
                + "; 1000 KV tokens in flight take "
                + EngineMemory.mib((slotLayout || pagedLayout ? 1 : 2) * kvBytesPerToken * 1000)
                + (pagedLayout
                    ? " MiB (pages of " + PAGE_TOKENS + " tokens); logits "
                    : slotLayout ? " MiB (one arena); logits " : " MiB (both arenas); logits ")
                + contract.logitsLayout()
                + "; KV "
                + contract.kvLayout());
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
      int queued,
      int running,
      long steps,
      long generatedTokens,
      long prefillTokens,
      long memoryBytes,
      long memoryBudgetBytes,
      long kvHeldBytes,
      long kvLiveBytes,
      long kvRemakes,
      long kvRemakeNanos) {}

  public Stats stats() {
    return new Stats(
        scheduler.size(),
        runningRows,
        steps.get(),
        generatedTokens.get(),
        prefillTokens.get(),
        memory.used(),
        memory.budget(),
        kvHeldBytes,
        kvLiveBytes,
        kvRemakes.get(),
        kvRemakeNanos.get());
  }

  /** Counts one re-allocation of KV storage (arena or page pool) that began at {@code t0}. */
  private void noteRemake(long t0) {
    kvRemakes.incrementAndGet();
    kvRemakeNanos.addAndGet(System.nanoTime() - t0);
  }

  /** Test hook: pool growths of at least {@code bytes} are allocated off the engine thread. */
  void backgroundGrowthAbove(long bytes) {
    backgroundGrowthBytes = bytes;
  }

  /**
   * Whether KV buffers (the paged layout's pool, the concat layout's arenas) may lie in reserved
   * regions ({@link ReservedRegion}; {@code prefixgate.engine.reserved-regions}); without them they
   * are direct buffers, re-made to grow. Takes effect when they are next made.
   */
  public void reservedRegions(boolean on) {
    reservedRegions = on;
  }

  /** Whether the paged layout's pool lies in a reserved region now. */
  boolean poolReserved() {
    return pool != null && pool.region != null;
  }

  /** Pages the paged layout's pool has grown by off the engine thread, while rows ran. */
  long backgroundPages() {
    return backgroundPages.get();
  }

  private ExecutorService allocator() {
    if (allocator == null) {
      allocator =
          Executors.newSingleThreadExecutor(
              r -> {
                Thread t = new Thread(r, "prefixgate-kv-alloc");
                t.setDaemon(true);
                return t;
              });
    }
    return allocator;
  }

  /** Decode steps of the paged layout that ran as more than one run (rows grouped by width). */
  long splitDecodeSteps() {
    return splitDecodeSteps.get();
  }

  public BloomModel model() {
    return model;
  }

  public EngineOptions options() {
    return options;
  }

  /** How long the engine must be idle before it hands its buffers back; any thread. */
  void idleReleaseAfter(java.time.Duration d) {
    idleReleaseNanos = d.toNanos();
    scheduler.wake();
  }

  /** The engine's memory accounting; tests inject allocation failures through it. */
  EngineMemory memory() {
    return memory;
  }

  /** The context limit every submitted request is checked against. */
  public ContextWindow contextWindow() {
    return new ContextWindow(options.maxContext());
  }

  /**
   * Queues a request.
   *
   * @throws IllegalArgumentException when the request cannot fit this model, the context limit or
   *     the engine's memory budget even with nothing else running
   * @throws QueueFullException when the admission queue is full
   */
  public Handle submit(GenerationRequest request, TokenListener listener) {
    if (!running) throw new IllegalStateException("engine is closed");
    contextWindow()
        .check(request.prefixLength(), request.promptIds().length, request.params().maxNewTokens());
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
    long alone = plannedBytes(1, request.reservedTokens(), request);
    if (alone > memory.budget()) {
      throw new IllegalArgumentException(
          "this request needs "
              + EngineMemory.mib(alone)
              + " MiB of engine memory ("
              + request.reservedTokens()
              + " KV tokens), more than the engine's budget of "
              + EngineMemory.mib(memory.budget())
              + " MiB; ask for fewer tokens");
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
    if (allocator != null) allocator.shutdownNow();
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
        prefillQueue.clear();
        prefilling = null;
        rows.clear();
        pastLen = 0;
        runningRows = 0;
        if (slotKv != null) slotKv.release();
        if (pool != null) pool.release();
      }
    }
    for (Sequence s : scheduler.drain()) finish(s, FinishReason.CANCELLED, null);
    for (Sequence s : rows) {
      if (!s.done) finish(s, FinishReason.CANCELLED, null);
    }
    rows.clear();
    prefilling = null;
    // Here, on the engine thread, no tensor is open: reserved regions are never freed otherwise
    releaseIdleMemory();
  }

  private void iterate() throws InterruptedException, OrtException {
    for (Sequence s : scheduler.removeCancelled()) finish(s, FinishReason.CANCELLED, null);
    for (Sequence s : rows) {
      if (s.cancelled && !s.done) finish(s, FinishReason.CANCELLED, null);
    }
    if (slotLayout && anyDone()) compactAndFit(); // before newcomers take slots
    if (pagedLayout) pool.adoptGrowth(false); // a larger pool made meanwhile goes in now
    if (pagedLayout && anyDone()) dropPagedRows(); // before newcomers take pages
    if (prefilling == null && prefillQueue.isEmpty()) {
      newcomers = admit();
      prefillQueue.addAll(prefillChunks(newcomers));
      if (pagedLayout && !newcomers.isEmpty() && !pool.growsFree()) reservePages(newcomers);
    }
    // With rows running, one prefill run of at most prefill_step_tokens per decode step, so the
    // running streams keep emitting while a long prompt goes in; with none, prefill at full size.
    while (prefilling != null || !prefillQueue.isEmpty()) {
      List<Sequence> joining = prefilling;
      if (joining == null) {
        if (pagedLayout && !rows.isEmpty() && !pagesReady(prefillQueue.peek())) {
          break; // its pages are being allocated; the running rows decode meanwhile
        }
        joining = prefillQueue.poll();
        boolean started =
            slotLayout
                ? startSlotPrefill(joining.get(0))
                : pagedLayout ? startPagedPrefill(joining) : startPrefill(joining);
        if (!started) continue;
      }
      boolean budgeted = !rows.isEmpty() && options.prefillStepTokens() > 0;
      int columns =
          budgeted
              ? stepColumns(
                  options.prefillStepTokens(),
                  joining.size(),
                  prefillPast(joining),
                  options.prefillStepPastTokens())
              : Integer.MAX_VALUE;
      if (slotLayout) {
        if (slotPrefillRun(columns)) slotJoin(joining.get(0));
      } else if (pagedLayout) {
        if (pagedPrefillRun(columns)) pagedJoin(joining);
      } else if (prefillRun(columns)) {
        rebuild(joining);
      }
      if (budgeted) break;
    }
    if (prefilling == null && prefillQueue.isEmpty()) newcomers = List.of();
    if (anyDone()) {
      if (slotLayout) compactAndFit();
      else if (pagedLayout) dropPagedRows();
      else rebuild(List.of());
    }
    runningRows = rows.size();
    noteKv();
    if (rows.isEmpty()) {
      if (prefilling != null || !prefillQueue.isEmpty()) { // goes on at full size
        idleSinceNanos = -1;
        return;
      }
      if (scheduler.size() == 0) idle();
      else idleSinceNanos = -1;
      scheduler.awaitWork(50);
      return;
    }
    idleSinceNanos = -1;
    if (slotLayout) slotDecode();
    else if (pagedLayout) pagedDecode();
    else decode();
  }

  /**
   * Prompt columns of the next prefill run of {@code rows} newcomers whose widest row attends over
   * {@code past} earlier tokens, under a step budget of {@code budget}: a column counts as 1 + past
   * / {@code pastTokens} (as 1 when that is 0), since its attention grows with the past while the
   * rest of its work does not. At least one column, so a prefill always moves on.
   */
  static int stepColumns(int budget, int rows, int past, int pastTokens) {
    double cost = pastTokens == 0 ? 1 : 1 + (double) past / pastTokens;
    return (int) Math.max(1, Math.floor(budget / (rows * cost)));
  }

  /** KV columns the next run of the prefill of {@code joining} attends over (widest row). */
  private int prefillPast(List<Sequence> joining) {
    if (!slotLayout && !pagedLayout) return prefillPmax + prefillDone;
    int past = 0;
    for (Sequence s : joining) past = Math.max(past, s.len);
    return past;
  }

  /** Updates the KV gauges: what the engine holds for KV, and what its rows' tokens need. */
  private void noteKv() {
    long live = 0;
    for (Sequence s : rows) live += s.len;
    if (prefilling != null) {
      for (Sequence s : prefilling) live += s.len;
    }
    kvLiveBytes = live * kvBytesPerToken;
    long held;
    if (pagedLayout) {
      held = pool.heldBytes();
    } else if (slotLayout) {
      held = slotKv.heldBytes();
    } else {
      held = past.heldBytes() + spare.heldBytes();
    }
    kvHeldBytes = held;
  }

  private boolean anyDone() {
    for (Sequence s : rows) {
      if (s.done) return true;
    }
    return false;
  }

  private List<Sequence> admit() {
    List<Sequence> out = new ArrayList<>();
    long reserved = 0;
    int live = 0;
    int widest = 0;
    Map<String, int[]> held = new HashMap<>();
    for (Sequence s : rows) {
      if (s.done) continue;
      reserved += s.request.reservedTokens();
      widest = Math.max(widest, s.request.reservedTokens());
      live++;
      held.computeIfAbsent(s.request.tenant(), t -> new int[1])[0]++;
    }
    int[] none = new int[1];
    while (live + out.size() < options.maxBatchRows()) {
      final long used = reserved;
      final int rowsAfter = live + out.size() + 1;
      final int width = widest;
      Sequence s =
          scheduler.poll(
              q ->
                  used + q.request.reservedTokens() <= options.maxBatchTokens()
                      && plannedBytes(
                              rowsAfter,
                              Math.max(width, q.request.reservedTokens()),
                              used + q.request.reservedTokens(),
                              q.request)
                          <= memory.budget(),
              tenant -> held.getOrDefault(tenant, none)[0],
              options.tenantShareRows(),
              options.tenantRowCap());
      if (s == null) break;
      if (s.cancelled) {
        finish(s, FinishReason.CANCELLED, null);
        continue;
      }
      s.admitNanos = System.nanoTime();
      reserved += s.request.reservedTokens();
      widest = Math.max(widest, s.request.reservedTokens());
      held.computeIfAbsent(s.request.tenant(), t -> new int[1])[0]++;
      out.add(s);
    }
    return out;
  }

  /**
   * Engine memory with {@code rows} running rows, none wider than {@code width} KV columns, while
   * {@code newcomer} is being prefilled: both running arenas at full width, both prefill arenas for
   * one prefill run, logits and the small id and mask buffers.
   */
  long plannedBytes(int rows, int width, GenerationRequest newcomer) {
    return plannedBytes(rows, width, Math.multiplyExact((long) rows, width), newcomer);
  }

  /**
   * Like {@link #plannedBytes(int, int, GenerationRequest)}, where the rows reserve {@code tokens}
   * KV tokens in all: the paged layout holds pages for those, not rows x widest.
   */
  long plannedBytes(int rows, int width, long tokens, GenerationRequest newcomer) {
    if (pagedLayout) {
      // Every row's reservation in whole pages, and while the pool grows one more layer of it.
      long pages = Math.addExact(tokens, (long) rows * (PAGE_TOKENS - 1)) / PAGE_TOKENS;
      long poolBytes = Math.multiplyExact(pages * PAGE_TOKENS, kvBytesPerToken);
      long vocabRow = (long) cfg.vocabSize() * Float.BYTES;
      long newColumns = Math.max(options.maxBatchRows(), options.maxPrefillTokens());
      long tableWidth = (long) width / PAGE_TOKENS + 2;
      long small =
          Math.addExact(
              Math.multiplyExact(newColumns, kvBytesPerToken),
              (long) Long.BYTES
                  * (options.maxPrefillTokens()
                      + (long) options.maxBatchRows()
                          * (tableWidth * (PAGE_TOKENS + 1) + options.maxPrefillTokens())));
      return Math.addExact(
          poolBytes + poolBytes / cfg.nLayer(),
          Math.addExact(options.maxBatchRows() * vocabRow, small));
    }
    if (slotLayout) {
      // One arena, and while it grows one more layer's key and value buffers at the new size.
      long arena = Math.multiplyExact((long) rows * width, kvBytesPerToken);
      long vocabRow = (long) cfg.vocabSize() * Float.BYTES;
      long small = Long.BYTES * ((long) options.maxPrefillTokens() + options.maxBatchRows());
      if (appendLayout) {
        // The run's new K/V (a decode step's rows or a prefill run's columns) and the mask.
        long newColumns = Math.max(options.maxBatchRows(), options.maxPrefillTokens());
        small =
            Math.addExact(
                Math.addExact(small, Math.multiplyExact(newColumns, kvBytesPerToken)),
                Math.multiplyExact(
                    (long) Long.BYTES * rows, (long) width * 3 / 2 + options.maxPrefillTokens()));
      }
      return Math.addExact(
          arena + arena / cfg.nLayer(), Math.addExact(options.maxBatchRows() * vocabRow, small));
    }
    long running = Math.multiplyExact(2L * rows * width, kvBytesPerToken);
    long prefillTokens =
        Math.max(options.maxPrefillTokens(), newcomer.prefixLength() + newcomer.promptIds().length);
    long prefill = Math.multiplyExact(2L * prefillTokens, kvBytesPerToken);
    long vocabRow = (long) cfg.vocabSize() * Float.BYTES;
    long logitsBytes = options.maxBatchRows() * vocabRow;
    if (contract.logitsLayout() == GraphContract.LogitsLayout.ALL_POSITIONS) {
      // segmentLength keeps one run's positions within both of these.
      long positions = Math.max(options.maxPrefillTokens(), newcomer.promptIds().length);
      logitsBytes =
          Math.max(
              logitsBytes, Math.min(PREFILL_LOGITS_BYTES, Math.multiplyExact(positions, vocabRow)));
    }
    long small = 2L * Long.BYTES * (prefillTokens + (long) options.maxBatchRows() * (width + 1));
    return Math.addExact(Math.addExact(running, prefill), logitsBytes + small);
  }

  /** Splits newcomers so that each prefill run stays within the padded-token limit. */
  private List<List<Sequence>> prefillChunks(List<Sequence> admitted) {
    List<List<Sequence>> chunks = new ArrayList<>();
    if (slotLayout) {
      // GroupQueryAttention appends several tokens to a past (the prefix) for one row at a time;
      // the append layout could take several, but shares the slot code's one-row prefill.
      for (Sequence s : admitted) chunks.add(List.of(s));
      return chunks;
    }
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
   * Prompt columns per prefill run for {@code b} rows: the per-run token limit, and for
   * all-positions graphs the logits cap.
   */
  private int segmentLength(int b, int smax) {
    long seg = Math.max(1, options.maxPrefillTokens() / b);
    if (contract.logitsLayout() == GraphContract.LogitsLayout.ALL_POSITIONS) {
      long perPosition = (long) b * cfg.vocabSize() * Float.BYTES;
      seg = Math.min(seg, Math.max(1, PREFILL_LOGITS_BYTES / perPosition));
    }
    return (int) Math.min(seg, smax);
  }

  /**
   * Starts a prefill for newcomers: sizes the buffers and writes their prefixes as the first past.
   * The prompt columns then go through ORT in one or more {@link #prefillRun}s. When a buffer
   * cannot be had, only these newcomers fail; the running batch is untouched.
   *
   * @return false when the newcomers failed
   */
  private boolean startPrefill(List<Sequence> chunk) {
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
    int seg = segmentLength(b, smax);
    try {
      long column = Math.multiplyExact((long) b * heads, d); // floats of one KV column, all rows
      // prefillIn holds the prefixes first, then (runs alternate) the KV of earlier runs.
      // fit, not ensure: the plan counts this prefill's buffers, not a longer earlier one's
      prefillIn.fit(Math.multiplyExact(column, width));
      prefillOut.fit(Math.multiplyExact(column, width));
      ids = memory.ensure(ids, Math.multiplyExact(b, (long) seg), "prefill input ids");
      maskBuf = memory.ensure(maskBuf, Math.multiplyExact(b, (long) width), "prefill mask");
      long positions = contract.logitsPositions(seg);
      logits =
          memory.ensure(
              logits, Math.multiplyExact((long) b * positions, cfg.vocabSize()), "prefill logits");
    } catch (EngineMemoryException | ArithmeticException e) {
      LOG.warning("prefill of " + b + " requests refused: " + e.getMessage());
      failRows(
          chunk,
          "not enough engine memory to prefill "
              + b
              + " request(s) of up to "
              + width
              + " tokens now: "
              + e.getMessage());
      return false;
    }
    for (int r = 0; r < b; r++) {
      Sequence s = chunk.get(r);
      int p = s.request.prefixLength();
      s.len = p + s.request.promptIds().length;
      for (int layer = 0; layer < cfg.nLayer(); layer++) {
        for (int kv = 0; kv < 2; kv++) {
          FloatBuffer dst = kv == 0 ? prefillIn.keys[layer] : prefillIn.values[layer];
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
    prefilling = chunk;
    prefillPmax = pmax;
    prefillSmax = smax;
    prefillWidth = width;
    prefillSegment = seg;
    prefillDone = 0;
    return true;
  }

  /**
   * One ORT run over the next at most {@code maxColumns} prompt columns of {@link #prefilling},
   * extending the KV of the runs before it; after the last one, samples each newcomer's first
   * token. On an ONNX error only these newcomers fail.
   *
   * @return true when the newcomers' KV is complete in {@link #prefillIn}, {@link #prefillWidth}
   *     wide
   */
  private boolean prefillRun(int maxColumns) {
    List<Sequence> chunk = prefilling;
    int b = chunk.size();
    int pmax = prefillPmax;
    int smax = prefillSmax;
    int vocab = cfg.vocabSize();
    int start = prefillDone;
    int n = Math.min(Math.min(prefillSegment, Math.max(1, maxColumns)), smax - start);
    int pastW = pmax + start;
    int w = pastW + n;
    int positions = contract.logitsPositions(n);
    try {
      for (int r = 0; r < b; r++) {
        Sequence s = chunk.get(r);
        int[] prompt = s.request.promptIds();
        int first = smax - prompt.length; // column of the prompt's first token
        int p = s.request.prefixLength();
        for (int c = 0; c < n; c++) {
          int col = start + c;
          ids.put(r * n + c, col < first ? cfg.padTokenId() : prompt[col - first]);
        }
        for (int c = 0; c < w; c++) {
          boolean prefixCol = c >= pmax - p && c < pmax;
          boolean promptCol = c >= pmax + first;
          maskBuf.put(r * w + c, prefixCol || promptCol ? 1 : 0);
        }
      }
      Map<String, OnnxTensor> in = new HashMap<>();
      Map<String, OnnxTensor> out = new HashMap<>();
      try {
        in.put(GraphContract.INPUT_IDS, tensor(ids, b, n));
        in.put(GraphContract.ATTENTION_MASK, tensor(maskBuf, b, w));
        out.put(GraphContract.LOGITS, tensor(logits, b, positions, vocab));
        bindKv(in, out, prefillIn, pastW, prefillOut, w, b);
        model.run(in, out);
      } finally {
        closeAll(in);
        closeAll(out);
      }
    } catch (OrtException | RuntimeException | OutOfMemoryError e) {
      LOG.log(Level.SEVERE, "prefill failed for " + b + " requests", e);
      failRows(chunk, e);
      prefilling = null;
      return false;
    }
    KvArena tmp = prefillIn;
    prefillIn = prefillOut;
    prefillOut = tmp;
    steps.incrementAndGet();
    prefillDone = start + n;
    if (prefillDone < smax) return false;
    prefilling = null;
    for (int r = 0; r < b; r++) {
      Sequence s = chunk.get(r);
      prefillTokens.addAndGet(s.request.promptIds().length);
      accept(s, (r * positions + positions - 1) * vocab);
    }
    return true;
  }

  /**
   * Builds the next running batch in {@link #spare}: surviving rows (from {@link #past}) then
   * {@code joined} (from {@link #prefillIn}: prefix and prompt columns only), each right-aligned.
   * When the larger batch does not fit in memory, the joining rows fail and the others go on.
   */
  private void rebuild(List<Sequence> joined) {
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
    try {
      long floats = Math.multiplyExact((long) next.size() * heads, (long) t * d);
      if (joined.isEmpty()) fitSpare(floats); // prefillIn holds no joiner's KV
      else spare.fit(floats);
    } catch (EngineMemoryException | ArithmeticException e) {
      if (firstNew == next.size()) throw e;
      failRows(
          next.subList(firstNew, next.size()),
          "not enough engine memory to join the running batch now: " + e.getMessage());
      rebuild(List.of());
      return;
    }
    for (int layer = 0; layer < cfg.nLayer(); layer++) {
      for (int kv = 0; kv < 2; kv++) {
        FloatBuffer dst = kv == 0 ? spare.keys[layer] : spare.values[layer];
        FloatBuffer fromPast = kv == 0 ? past.keys[layer] : past.values[layer];
        FloatBuffer fromNew = kv == 0 ? prefillIn.keys[layer] : prefillIn.values[layer];
        for (int r = 0; r < next.size(); r++) {
          Sequence s = next.get(r);
          for (int h = 0; h < heads; h++) {
            int dstRow = (r * heads + h) * t * d;
            zero(dst, dstRow, (t - s.len) * d);
            int at = dstRow + (t - s.len) * d;
            if (r < firstNew) {
              int srcStart = ((s.slot * heads + h) * pastLen + pastLen - s.len) * d;
              dst.put(at, fromPast, srcStart, s.len * d);
            } else {
              int p = s.request.prefixLength();
              int prompt = s.request.promptIds().length;
              int srcRow = (s.slot * heads + h) * prefillWidth * d;
              if (p > 0) dst.put(at, fromNew, srcRow + (prefillPmax - p) * d, p * d);
              dst.put(at + p * d, fromNew, srcRow + (prefillWidth - prompt) * d, prompt * d);
            }
          }
        }
      }
    }
    swap();
    rows.clear();
    rows.addAll(next);
    pastLen = t;
  }

  // ---- slot layout: rows.get(i) owns slot i of slotKv; ONNX Runtime writes new columns in place

  /**
   * Starts the prefill of one newcomer in the slot after the running rows: writes its prefix at
   * columns [0, P). When the arena cannot grow, only this newcomer fails.
   *
   * @return false when the newcomer failed
   */
  private boolean startSlotPrefill(Sequence s) {
    int slot = rows.size();
    int prompt = s.request.promptIds().length;
    int seg = segmentLength(1, prompt);
    try {
      int columns = s.request.reservedTokens();
      for (Sequence r : rows) columns = Math.max(columns, r.request.reservedTokens());
      if (appendLayout) {
        // Every row's step reads all the arena's columns: size it by the live tokens (this
        // prompt, the rows' lengths) and grow it as they lengthen, never past the reservations.
        int live = s.request.prefixLength() + prompt;
        for (Sequence r : rows) live = Math.max(live, r.len + 1);
        slotKv.ensure(slot + 1, live, columns);
      } else {
        slotKv.ensure(slot + 1, columns);
      }
      ids = memory.ensure(ids, seg, "prefill input ids");
      logits = memory.ensure(logits, cfg.vocabSize(), "prefill logits");
    } catch (EngineMemoryException | ArithmeticException e) {
      LOG.warning("prefill refused: " + e.getMessage());
      failRows(
          List.of(s),
          "not enough engine memory to prefill a request of "
              + s.request.reservedTokens()
              + " tokens now: "
              + e.getMessage());
      return false;
    }
    int p = s.request.prefixLength();
    int heads = cfg.nHead();
    int d = cfg.headDim();
    if (p > 0) {
      for (int layer = 0; layer < cfg.nLayer(); layer++) {
        for (int kv = 0; kv < 2; kv++) {
          FloatBuffer dst = kv == 0 ? slotKv.keys[layer] : slotKv.values[layer];
          FloatBuffer src =
              kv == 0 ? s.request.prefix().key(layer) : s.request.prefix().value(layer);
          for (int h = 0; h < heads; h++) {
            dst.put(slotKv.offset(slot, h), src, h * p * d, p * d);
          }
        }
      }
    }
    s.slot = slot;
    s.len = p;
    prefilling = List.of(s);
    prefillSmax = prompt;
    prefillSegment = seg;
    prefillDone = 0;
    return true;
  }

  /**
   * One ORT run over the next at most {@code maxColumns} prompt tokens of the newcomer, written in
   * place after the columns before them; after the last one, samples its first token.
   *
   * @return true when its prompt is complete
   */
  private boolean slotPrefillRun(int maxColumns) {
    Sequence s = prefilling.get(0);
    int[] prompt = s.request.promptIds();
    int start = prefillDone;
    int n = Math.min(Math.min(prefillSegment, Math.max(1, maxColumns)), prompt.length - start);
    int after = s.len + n;
    try {
      for (int c = 0; c < n; c++) ids.put(c, prompt[start + c]);
      seqlens.put(0, after - 1);
      totalLen.put(0, after);
      runSlots(s.slot, 1, n);
    } catch (OrtException | RuntimeException | OutOfMemoryError e) {
      LOG.log(Level.SEVERE, "prefill failed", e);
      failRows(prefilling, e);
      prefilling = null;
      return false;
    }
    s.len = after;
    steps.incrementAndGet();
    prefillDone = start + n;
    if (prefillDone < prompt.length) return false;
    prefilling = null;
    prefillTokens.addAndGet(prompt.length);
    accept(s, 0);
    return true;
  }

  /** The prefilled newcomer joins the running rows: moved down when rows left meanwhile. */
  private void slotJoin(Sequence s) {
    if (s.done) return;
    int slot = rows.size();
    if (s.slot != slot) {
      slotKv.move(s.slot, slot, s.len);
      s.slot = slot;
    }
    rows.add(s);
  }

  /** Drops finished rows; the last live row moves into each hole (one row's live columns). */
  private void compactSlots() {
    int n = rows.size();
    int r = 0;
    while (r < n) {
      if (!rows.get(r).done) {
        r++;
        continue;
      }
      int j = n - 1;
      while (j > r && rows.get(j).done) j--;
      if (j == r) {
        n = r;
        break;
      }
      Sequence m = rows.get(j);
      slotKv.move(j, r, m.len);
      m.slot = r;
      rows.set(r, m);
      n = j;
      r++;
    }
    rows.subList(n, rows.size()).clear();
  }

  private void compactAndFit() {
    compactSlots();
    if (appendLayout) fitAppendArena();
  }

  /**
   * The append layout reads every column of the arena at every step: when the rows that stay (and a
   * newcomer being prefilled) need less than half of it, it is re-made at their size (their live
   * columns copied, one layer at a time).
   */
  private void fitAppendArena() {
    int live = Math.max(1, liveColumns());
    int target = Math.min(Math.max(1, widestReservation()), live + live / 2);
    if (slotKv.columns > 2 * target) slotKv.remake(slotKv.slots, target);
  }

  /**
   * Columns the running rows need for their next token, and a newcomer being prefilled for its
   * whole prompt.
   */
  private int liveColumns() {
    int live = 0;
    for (Sequence s : rows) live = Math.max(live, s.len + 1);
    if (prefilling != null) {
      GenerationRequest p = prefilling.get(0).request;
      live = Math.max(live, p.prefixLength() + p.promptIds().length);
    }
    return live;
  }

  /** The widest reservation of the running rows and a newcomer being prefilled. */
  private int widestReservation() {
    int widest = 0;
    for (Sequence s : rows) widest = Math.max(widest, s.request.reservedTokens());
    if (prefilling != null) widest = Math.max(widest, prefilling.get(0).request.reservedTokens());
    return widest;
  }

  /** One token for every running row, each written at its own next column. */
  private void slotDecode() throws OrtException {
    int b = rows.size();
    if (appendLayout) {
      // A newcomer being prefilled keeps its slot and its columns. Within the admission plan
      // (rows x their widest reservation), so the budget holds.
      int slotsNeeded = prefilling == null ? b : Math.max(b, prefilling.get(0).slot + 1);
      slotKv.ensure(slotsNeeded, liveColumns(), widestReservation());
    }
    int vocab = cfg.vocabSize();
    ids = memory.ensure(ids, b, "decode input ids");
    logits = memory.ensure(logits, (long) b * vocab, "decode logits");
    int longest = 0;
    for (int r = 0; r < b; r++) {
      Sequence s = rows.get(r);
      ids.put(r, s.lastToken);
      seqlens.put(r, s.len); // length after this step (len + 1), minus 1
      longest = Math.max(longest, s.len + 1);
    }
    totalLen.put(0, longest);
    runSlots(0, b, 1);
    steps.incrementAndGet();
    for (int r = 0; r < b; r++) {
      Sequence s = rows.get(r);
      s.len++;
      if (!s.done) accept(s, r * vocab);
    }
  }

  /**
   * One run over slots [first, first + b) with {@code seq} input columns per row; {@code seqlens}
   * holds each row's length after the run, minus 1.
   */
  private void runSlots(int first, int b, int seq) throws OrtException {
    if (appendLayout) {
      runAppend(first, b, seq);
      return;
    }
    int heads = cfg.nHead();
    int d = cfg.headDim();
    long[] kvShape = {b, heads, slotKv.columns, d};
    Map<String, OnnxTensor> in = new HashMap<>();
    Map<String, OnnxTensor> out = new HashMap<>();
    try {
      in.put(GraphContract.INPUT_IDS, tensor(ids, b, seq));
      in.put(
          GraphContract.SEQLENS_K,
          OnnxTensor.createTensor(model.env(), seqlens.slice(0, b), new long[] {b}));
      in.put(
          GraphContract.TOTAL_SEQUENCE_LENGTH,
          OnnxTensor.createTensor(model.env(), totalLen.slice(0, 1), new long[0]));
      out.put(GraphContract.LOGITS, tensor(logits, b, 1, cfg.vocabSize()));
      for (int layer = 0; layer < cfg.nLayer(); layer++) {
        // past and present over the same memory: the graph writes the new columns in place.
        putSlotPast(in, layer, first, b);
        FloatBuffer k = slotKv.view(slotKv.keys[layer], first, b);
        FloatBuffer v = slotKv.view(slotKv.values[layer], first, b);
        out.put(contract.presentKey(layer), OnnxTensor.createTensor(model.env(), k, kvShape));
        out.put(contract.presentValue(layer), OnnxTensor.createTensor(model.env(), v, kvShape));
      }
      model.run(in, out);
    } finally {
      closeAll(in);
      closeAll(out);
    }
  }

  /** Layer {@code layer}'s past: slots [first, first + b) of the arena, as they are. */
  private void putSlotPast(Map<String, OnnxTensor> in, int layer, int first, int b)
      throws OrtException {
    long[] shape = {b, cfg.nHead(), slotKv.columns, cfg.headDim()};
    FloatBuffer k = slotKv.view(slotKv.keys[layer], first, b);
    FloatBuffer v = slotKv.view(slotKv.values[layer], first, b);
    in.put(contract.pastKey(layer), OnnxTensor.createTensor(model.env(), k, shape));
    in.put(contract.pastValue(layer), OnnxTensor.createTensor(model.env(), v, shape));
  }

  /**
   * The append layout's run: past is the slots' arena itself (read, never written by ONNX Runtime),
   * the mask marks each row's live columns and the new ones, and the run's new K/V come back in
   * {@link #newKv}; they are then copied to columns [len, len + seq) of each row's slot. A row's
   * unused columns between its live ones and the capacity are masked out (ALiBi positions come from
   * the mask's cumulative sum, so that is exact).
   */
  private void runAppend(int first, int b, int seq) throws OrtException {
    int heads = cfg.nHead();
    int d = cfg.headDim();
    int cap = slotKv.columns;
    int width = Math.addExact(cap, seq);
    maskBuf = memory.ensure(maskBuf, Math.multiplyExact((long) b, width), "attention mask");
    int perLayer = Math.multiplyExact(Math.multiplyExact(b * heads, seq), d);
    newKv =
        memory.ensure(newKv, Math.multiplyExact(2L * cfg.nLayer(), perLayer), "new KV of one run");
    for (int r = 0; r < b; r++) {
      int before = seqlens.get(r) + 1 - seq;
      int row = r * width;
      for (int c = 0; c < before; c++) maskBuf.put(row + c, 1L);
      for (int c = before; c < cap; c++) maskBuf.put(row + c, 0L);
      for (int c = cap; c < width; c++) maskBuf.put(row + c, 1L);
    }
    long[] newShape = {b, heads, seq, d};
    Map<String, OnnxTensor> in = new HashMap<>();
    Map<String, OnnxTensor> out = new HashMap<>();
    try {
      in.put(GraphContract.INPUT_IDS, tensor(ids, b, seq));
      in.put(GraphContract.ATTENTION_MASK, tensor(maskBuf, b, width));
      out.put(GraphContract.LOGITS, tensor(logits, b, 1, cfg.vocabSize()));
      for (int layer = 0; layer < cfg.nLayer(); layer++) {
        putSlotPast(in, layer, first, b);
        out.put(
            contract.presentKey(layer),
            OnnxTensor.createTensor(
                model.env(), newKv.slice(2 * layer * perLayer, perLayer), newShape));
        out.put(
            contract.presentValue(layer),
            OnnxTensor.createTensor(
                model.env(), newKv.slice((2 * layer + 1) * perLayer, perLayer), newShape));
      }
      model.run(in, out);
    } finally {
      closeAll(in);
      closeAll(out);
    }
    int columns = seq * d;
    for (int layer = 0; layer < cfg.nLayer(); layer++) {
      for (int kv = 0; kv < 2; kv++) {
        FloatBuffer dst = kv == 0 ? slotKv.keys[layer] : slotKv.values[layer];
        int src = (2 * layer + kv) * perLayer;
        for (int r = 0; r < b; r++) {
          int at = (seqlens.get(r) + 1 - seq) * d;
          for (int h = 0; h < heads; h++) {
            dst.put(
                slotKv.offset(first + r, h) + at, newKv, src + (r * heads + h) * columns, columns);
          }
        }
      }
    }
  }

  // ---- paged layout: a row's tokens live in pages of one pool; joining, leaving and growing
  // move nothing but the pool itself when it is re-made

  private static int pagesFor(int tokens) {
    return (tokens + PAGE_TOKENS - 1) / PAGE_TOKENS;
  }

  /**
   * Starts the prefill of newcomers (several at once, prompts right-aligned as in {@link
   * #startPrefill}): takes the pages their prefixes need (and their prompts', unless the pool grows
   * free: then each run takes its own, {@link #takeRunPages}) and writes the prefixes into them.
   * When the pool or a buffer cannot be had, only these newcomers fail.
   *
   * @return false when the newcomers failed
   */
  private boolean startPagedPrefill(List<Sequence> chunk) {
    int b = chunk.size();
    int pmax = 0;
    int smax = 0;
    int pages = 0;
    // A pool that grows free (in its reserved region) takes each run's pages as it writes them,
    // so KV held follows the tokens written; one re-made to grow takes the whole prompts' now.
    boolean lazy = pool.growsFree();
    for (Sequence s : chunk) {
      pmax = Math.max(pmax, s.request.prefixLength());
      smax = Math.max(smax, s.request.promptIds().length);
      pages += pagesFor(s.request.prefixLength() + (lazy ? 0 : s.request.promptIds().length));
    }
    int seg = segmentLength(b, smax);
    int heads = cfg.nHead();
    int d = cfg.headDim();
    try {
      int tableWidth = pagesFor(pmax + smax) + 1;
      pool.ensureFree(pages);
      ids = memory.ensure(ids, Math.multiplyExact((long) b, seg), "prefill input ids");
      blockTable =
          memory.ensure(blockTable, Math.multiplyExact((long) b, tableWidth), "block table");
      maskBuf =
          memory.ensure(
              maskBuf,
              Math.multiplyExact((long) b, (long) tableWidth * PAGE_TOKENS + seg),
              "prefill mask");
      newKv =
          memory.ensure(
              newKv,
              Math.multiplyExact(2L * cfg.nLayer(), Math.multiplyExact((long) b * heads, seg * d)),
              "new KV of one run");
      logits = memory.ensure(logits, Math.multiplyExact((long) b, cfg.vocabSize()), "logits");
    } catch (EngineMemoryException | ArithmeticException e) {
      LOG.warning("prefill of " + b + " requests refused: " + e.getMessage());
      failRows(
          chunk,
          "not enough engine memory to prefill "
              + b
              + " request(s) of up to "
              + (pmax + smax)
              + " tokens now: "
              + e.getMessage());
      return false;
    }
    for (Sequence s : chunk) {
      int p = s.request.prefixLength();
      pool.take(s, pagesFor(p + (lazy ? 0 : s.request.promptIds().length)));
      s.len = 0;
      if (p > 0) {
        for (int layer = 0; layer < cfg.nLayer(); layer++) {
          for (int kv = 0; kv < 2; kv++) {
            FloatBuffer dst = kv == 0 ? pool.keys[layer] : pool.values[layer];
            FloatBuffer src =
                kv == 0 ? s.request.prefix().key(layer) : s.request.prefix().value(layer);
            for (int h = 0; h < heads; h++) {
              for (int t = 0; t < p; t += PAGE_TOKENS) {
                int n = Math.min(PAGE_TOKENS, p - t);
                dst.put(pool.offset(s.pages[t / PAGE_TOKENS], h), src, (h * p + t) * d, n * d);
              }
            }
          }
        }
      }
      s.len = p;
    }
    prefilling = chunk;
    prefillPmax = pmax;
    prefillSmax = smax;
    prefillSegment = seg;
    prefillDone = 0;
    return true;
  }

  /**
   * One ORT run over the next at most {@code maxColumns} prompt columns of the newcomers; each
   * row's new tokens go into its pages. After the last run, samples each one's first token. On an
   * ONNX error only these newcomers fail (and give their pages back).
   *
   * @return true when their prompts are complete
   */
  private boolean pagedPrefillRun(int maxColumns) {
    List<Sequence> chunk = prefilling;
    int b = chunk.size();
    int smax = prefillSmax;
    int start = prefillDone;
    int n = Math.min(Math.min(prefillSegment, Math.max(1, maxColumns)), smax - start);
    try {
      for (int r = 0; r < b; r++) {
        Sequence s = chunk.get(r);
        int[] prompt = s.request.promptIds();
        int lead = smax - prompt.length; // the prompt's first column
        for (int c = 0; c < n; c++) {
          int col = start + c;
          ids.put(r * n + c, col < lead ? cfg.padTokenId() : prompt[col - lead]);
        }
      }
      int[] firstReal = new int[b];
      for (int r = 0; r < b; r++) {
        int lead = smax - chunk.get(r).request.promptIds().length;
        firstReal[r] = Math.min(n, Math.max(0, lead - start));
      }
      takeRunPages(chunk, n, firstReal);
      runPaged(chunk, n, firstReal);
    } catch (EngineMemoryException | ArithmeticException e) {
      LOG.warning("prefill of " + b + " requests stopped: " + e.getMessage());
      failRows(chunk, "not enough engine memory to go on with the prefill: " + e.getMessage());
      for (Sequence s : chunk) pool.give(s);
      prefilling = null;
      return false;
    } catch (OrtException | RuntimeException | OutOfMemoryError e) {
      LOG.log(Level.SEVERE, "prefill failed for " + b + " requests", e);
      failRows(chunk, e);
      for (Sequence s : chunk) pool.give(s);
      prefilling = null;
      return false;
    }
    steps.incrementAndGet();
    prefillDone = start + n;
    if (prefillDone < smax) return false;
    prefilling = null;
    for (int r = 0; r < b; r++) {
      Sequence s = chunk.get(r);
      prefillTokens.addAndGet(s.request.promptIds().length);
      accept(s, r * cfg.vocabSize());
    }
    return true;
  }

  /**
   * Gives each row of a prefill run the pages its real tokens of this run go into (none where the
   * pages were taken for the whole prompt at its start), growing the pool by what they lack.
   */
  private void takeRunPages(List<Sequence> chunk, int seq, int[] firstReal) {
    int lacking = 0;
    for (int r = 0; r < chunk.size(); r++) {
      Sequence s = chunk.get(r);
      lacking += Math.max(0, pagesFor(s.len + seq - firstReal[r]) - s.pageCount);
    }
    if (lacking == 0) return;
    pool.ensureFree(lacking);
    for (int r = 0; r < chunk.size(); r++) {
      Sequence s = chunk.get(r);
      int want = pagesFor(s.len + seq - firstReal[r]);
      if (want > s.pageCount) pool.take(s, want);
    }
  }

  /**
   * Grows the pool once for all of an admission's newcomers, rather than once per prefill chunk
   * (each growth copies the pool). With rows running and a large growth, the larger pool (with a
   * page more for each running row, its next page while the newcomers prefill) is allocated off the
   * engine thread ({@link PagePool#freeOrGrowing}) and the rows go on decoding; otherwise it grows
   * now. When the pages cannot be had, each chunk still asks for its own at its start, and only a
   * chunk that cannot have them fails.
   */
  private void reservePages(List<Sequence> admitted) {
    try {
      int pages = Math.toIntExact(promptPages(admitted));
      if (!rows.isEmpty() && !pool.freeOrGrowing(Math.addExact(pages, rows.size()))) {
        return; // allocated off the engine thread
      }
      pool.ensureFree(pages);
    } catch (EngineMemoryException | ArithmeticException e) {
      LOG.fine(() -> "pages for all newcomers at once: " + e.getMessage());
    }
  }

  /**
   * Whether the next prefill chunk's pages (and one per running row) can be had now, or are being
   * allocated in the background (false: the chunk waits, the rows decode).
   */
  private boolean pagesReady(List<Sequence> chunk) {
    long pages = promptPages(chunk) + rows.size();
    return pages > Integer.MAX_VALUE || pool.freeOrGrowing((int) pages);
  }

  /** Pages the prefixes and prompts of {@code newcomers} take. */
  private static long promptPages(List<Sequence> newcomers) {
    long pages = 0;
    for (Sequence s : newcomers) {
      pages += pagesFor(s.request.prefixLength() + s.request.promptIds().length);
    }
    return pages;
  }

  /** Prefilled newcomers join the running rows; nothing is copied. */
  private void pagedJoin(List<Sequence> joined) {
    for (Sequence s : joined) {
      if (s.done) pool.give(s);
      else rows.add(s);
    }
  }

  /** Drops finished rows and gives their pages back; a pool far larger than needed shrinks. */
  private void dropPagedRows() {
    int kept = 0;
    for (Sequence s : rows) {
      if (s.done) pool.give(s);
      else rows.set(kept++, s);
    }
    rows.subList(kept, rows.size()).clear();
    int inUse = pool.inUse();
    boolean free = pool.growsFree();
    int target = Math.max(free ? inUse : inUse + inUse / 16, PagePool.MIN_PAGES);
    // A pool re-made to shrink copies every live page, so it waits until it is twice the need; one
    // in its region moves only the live pages above the new size, so it follows the need closely
    int most = free ? target + Math.max(inUse / 16, PagePool.MIN_PAGES) : 2 * target;
    if (pool.pages > most && !pool.growing()) {
      List<Sequence> live = new ArrayList<>(rows);
      if (prefilling != null) live.addAll(prefilling);
      pool.remake(target, live);
    }
  }

  /** One token for every running row, its K/V written into the row's next page column. */
  private void pagedDecode() throws OrtException {
    int b = rows.size();
    int full = 0;
    for (Sequence s : rows) {
      if (s.len == s.pageCount * PAGE_TOKENS) full++;
    }
    // Within the admission plan (every row's reservation in pages), so the budget holds.
    pool.ensureFree(full);
    int widest = 1;
    for (Sequence s : rows) {
      if (s.len == s.pageCount * PAGE_TOKENS) pool.take(s, s.pageCount + 1);
      widest = Math.max(widest, pagesFor(s.len));
    }
    int vocab = cfg.vocabSize();
    int heads = cfg.nHead();
    int d = cfg.headDim();
    ids = memory.ensure(ids, b, "decode input ids");
    logits = memory.ensure(logits, (long) b * vocab, "decode logits");
    blockTable = memory.ensure(blockTable, (long) b * widest, "block table");
    maskBuf = memory.ensure(maskBuf, (long) b * (widest * PAGE_TOKENS + 1), "decode mask");
    newKv = memory.ensure(newKv, 2L * cfg.nLayer() * b * heads * d, "new KV of one run");
    int[] widths = new int[b];
    for (int r = 0; r < b; r++) widths[r] = pagesFor(rows.get(r).len) * PAGE_TOKENS + 1;
    int[][] groups = DecodeGroups.split(widths, decodeRunCost);
    if (groups.length > 1) splitDecodeSteps.incrementAndGet();
    for (int[] group : groups) {
      List<Sequence> batch = new ArrayList<>(group.length);
      for (int r = 0; r < group.length; r++) {
        Sequence s = rows.get(group[r]);
        batch.add(s);
        ids.put(r, s.lastToken);
      }
      runPaged(batch, 1, new int[group.length]);
      steps.incrementAndGet();
      for (int r = 0; r < group.length; r++) { // before the next group's run reuses the logits
        Sequence s = batch.get(r);
        if (!s.done) accept(s, r * vocab);
      }
    }
    // a page for every row's next crossing, allocated meanwhile when the pool runs short
    if (!pool.growing()) pool.freeOrGrowing(b);
  }

  /**
   * One run of the paged graph over {@code batch} with {@code seq} input columns per row (already
   * in {@link #ids}); row r's columns before {@code firstReal[r]} are padding (right-aligned
   * prompts). Builds the block table and the mask, runs, writes each row's real new tokens into its
   * pages and advances its {@code len}.
   */
  private void runPaged(List<Sequence> batch, int seq, int[] firstReal) throws OrtException {
    int b = batch.size();
    int heads = cfg.nHead();
    int d = cfg.headDim();
    int tablePages = 1;
    for (Sequence s : batch) tablePages = Math.max(tablePages, pagesFor(s.len));
    int past = tablePages * PAGE_TOKENS;
    int width = past + seq;
    for (int r = 0; r < b; r++) {
      Sequence s = batch.get(r);
      int used = pagesFor(s.len);
      for (int k = 0; k < tablePages; k++) {
        // masked columns read any page: its first, or page 0 before it has one (a row whose
        // columns of this prefill run are all padding)
        blockTable.put(
            r * tablePages + k, k < used ? s.pages[k] : s.pageCount > 0 ? s.pages[0] : 0);
      }
      int row = r * width;
      for (int c = 0; c < past; c++) maskBuf.put(row + c, c < s.len ? 1L : 0L);
      for (int c = 0; c < seq; c++) maskBuf.put(row + past + c, c >= firstReal[r] ? 1L : 0L);
    }
    int perLayer = b * heads * seq * d;
    long[] newShape = {b, heads, seq, d};
    long[] poolShape = {heads, pool.stride, PAGE_TOKENS, d};
    Map<String, OnnxTensor> in = new HashMap<>();
    Map<String, OnnxTensor> out = new HashMap<>();
    try {
      in.put(GraphContract.INPUT_IDS, tensor(ids, b, seq));
      in.put(GraphContract.ATTENTION_MASK, tensor(maskBuf, b, width));
      in.put(GraphContract.BLOCK_TABLE, tensor(blockTable, b, tablePages));
      out.put(GraphContract.LOGITS, tensor(logits, b, 1, cfg.vocabSize()));
      for (int layer = 0; layer < cfg.nLayer(); layer++) {
        in.put(contract.pastKey(layer), tensor(pool.keys[layer], poolShape));
        in.put(contract.pastValue(layer), tensor(pool.values[layer], poolShape));
        out.put(
            contract.presentKey(layer),
            OnnxTensor.createTensor(
                model.env(), newKv.slice(2 * layer * perLayer, perLayer), newShape));
        out.put(
            contract.presentValue(layer),
            OnnxTensor.createTensor(
                model.env(), newKv.slice((2 * layer + 1) * perLayer, perLayer), newShape));
      }
      model.run(in, out);
    } finally {
      closeAll(in);
      closeAll(out);
    }
    for (int r = 0; r < b; r++) {
      Sequence s = batch.get(r);
      int first = firstReal[r];
      for (int c = first; c < seq; c++) {
        int t = s.len + c - first;
        int page = s.pages[t / PAGE_TOKENS];
        int at = (t % PAGE_TOKENS) * d;
        for (int layer = 0; layer < cfg.nLayer(); layer++) {
          for (int kv = 0; kv < 2; kv++) {
            FloatBuffer dst = kv == 0 ? pool.keys[layer] : pool.values[layer];
            int src = (2 * layer + kv) * perLayer + ((r * heads) * seq + c) * d;
            for (int h = 0; h < heads; h++) {
              dst.put(pool.offset(page, h) + at, newKv, src + h * seq * d, d);
            }
          }
        }
      }
      s.len += seq - first;
    }
  }

  /** One token for every running row. */
  private void decode() throws OrtException {
    int b = rows.size();
    int t = pastLen;
    int width = t + 1;
    int vocab = cfg.vocabSize();
    ids = memory.ensure(ids, b, "decode input ids");
    maskBuf = memory.ensure(maskBuf, (long) b * width, "decode mask");
    logits = memory.ensure(logits, (long) b * vocab, "decode logits");
    fitSpare(Math.multiplyExact((long) b * cfg.nHead(), (long) width * cfg.headDim()));
    for (int r = 0; r < b; r++) {
      Sequence s = rows.get(r);
      ids.put(r, s.lastToken);
      int pad = t - s.len;
      for (int c = 0; c < pad; c++) maskBuf.put(r * width + c, 0);
      for (int c = pad; c < width; c++) maskBuf.put(r * width + c, 1);
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
      s.len++;
      if (!s.done) accept(s, r * vocab);
    }
  }

  /**
   * The running rows' next KV, before anything a prefill holds: when the budget has no room for it,
   * the prefill arenas are handed back (failing the newcomers being prefilled, if any) and it is
   * tried again, so that memory a prefill took beyond the plan never fails the running rows.
   */
  private void fitSpare(long floats) {
    try {
      spare.fit(floats);
      return;
    } catch (EngineMemoryException e) {
      if (prefillIn.heldBytes() + prefillOut.heldBytes() == 0) throw e;
      LOG.warning("handing the prefill buffers back for the running rows: " + e.getMessage());
      if (prefilling != null) {
        failRows(prefilling, "not enough engine memory to go on prefilling: " + e.getMessage());
        prefilling = null;
      }
      prefillIn.release();
      prefillOut.release();
    }
    spare.fit(floats);
  }

  /**
   * Nothing runs or waits. Once that has lasted {@link #idleReleaseNanos}, hand every buffer back.
   * Not at once: under bursty traffic the batch empties for a few milliseconds many times a second,
   * and re-making the buffers each time churns direct memory (freed direct buffers only return to
   * the C heap at a GC) for no gain.
   */
  private void idle() {
    long now = System.nanoTime();
    if (idleSinceNanos < 0) idleSinceNanos = now;
    if (now - idleSinceNanos >= idleReleaseNanos) releaseIdleMemory();
  }

  /** Hand every buffer back (they are re-made, zeroed, on demand). */
  private void releaseIdleMemory() {
    // each a no-op when it holds nothing; a region is unmapped even when it counts no bytes
    past.release();
    spare.release();
    prefillIn.release();
    prefillOut.release();
    if (slotKv != null) slotKv.release();
    if (pool != null) pool.release();
    memory.release(blockTable);
    blockTable = null;
    memory.release(logits);
    memory.release(ids);
    memory.release(maskBuf);
    memory.release(newKv);
    logits = null;
    ids = null;
    maskBuf = null;
    newKv = null;
    pastLen = 0;
  }

  /** Samples one token for {@code s} from the logits at {@code offset} and reports it. */
  private void accept(Sequence s, int offset) {
    if (s.cancelled) {
      finish(s, FinishReason.CANCELLED, null);
      return;
    }
    SamplingParams p = s.request.params();
    Sampler.Pick pick = sampler.pick(logits, offset, p, s.seen, s.promptLength, s.seenCount, s.rng);
    int token = pick.token();
    if (s.firstTokenNanos < 0) s.firstTokenNanos = System.nanoTime();
    s.generated++;
    s.seen[s.seenCount++] = token;
    s.lastToken = token;
    generatedTokens.incrementAndGet();
    boolean eos = token == cfg.eosTokenId() && !p.ignoreEos();
    String text = eos ? "" : s.stop.feed(s.detokenizer.next(token));
    try {
      s.listener.onToken(token, text, pick.logprob(), pick.topIds(), pick.topLogprobs());
    } catch (ListenerGone e) {
      s.cancelled = true; // the consumer left: an ordinary cancellation, not a failure
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
    } catch (ListenerGone e) {
      // nobody to tell
    } catch (RuntimeException e) {
      LOG.log(Level.WARNING, "completion listener failed", e);
    }
  }

  private void failRows(List<Sequence> seqs, Throwable cause) {
    failRows(seqs, "generation failed: " + cause.getMessage());
  }

  private void failRows(List<Sequence> seqs, String message) {
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

  /**
   * One region for every layer's key and value buffer, {@code bufferBytes} each, laid over {@code
   * keys} and {@code values} (layer by layer, key then value); null where the system refuses the
   * reservation, and from then on KV buffers are direct buffers.
   */
  private ReservedRegion reserveLayers(
      FloatBuffer[] keys, FloatBuffer[] values, long bufferBytes, String what) {
    ReservedRegion region;
    try {
      region = ReservedRegion.reserve(Math.multiplyExact(2L * keys.length, bufferBytes), what);
    } catch (EngineMemoryException | ArithmeticException e) {
      LOG.warning(e.getMessage() + "; " + what + " is made of direct buffers");
      reservedRegions = false;
      return null;
    }
    for (int i = 0; i < keys.length; i++) {
      keys[i] = region.buffer(2L * i * bufferBytes, bufferBytes).asFloatBuffer();
      values[i] = region.buffer((2L * i + 1) * bufferBytes, bufferBytes).asFloatBuffer();
    }
    return region;
  }

  /** Unmaps a region from {@link #reserveLayers}; no tensor is open over it between steps. */
  private static void closeLayers(ReservedRegion region, FloatBuffer[] keys, FloatBuffer[] values) {
    java.util.Arrays.fill(keys, null);
    java.util.Arrays.fill(values, null);
    region.close();
  }

  private static void closeAll(Map<String, OnnxTensor> tensors) {
    for (OnnxTensor t : tensors.values()) t.close();
  }

  private static IntBuffer intBuffer(int n) {
    return ByteBuffer.allocateDirect(n * Integer.BYTES)
        .order(ByteOrder.nativeOrder())
        .asIntBuffer();
  }

  /**
   * A new key and value buffer of {@code floats} each for layer {@code layer} of an arena being
   * re-made one layer at a time. Only the first layer's allocation may fail cleanly (nothing has
   * changed yet); a later one leaves layers of two sizes, so it fails the whole batch (the engine
   * loop's catch).
   */
  private FloatBuffer[] layerPair(long floats, String what, int layer) {
    FloatBuffer k = null;
    try {
      k = memory.ensure((FloatBuffer) null, floats, what);
      return new FloatBuffer[] {k, memory.ensure((FloatBuffer) null, floats, what)};
    } catch (EngineMemoryException e) {
      memory.release(k);
      if (layer == 0) throw e;
      throw new IllegalStateException("re-making the " + what + " failed at layer " + layer, e);
    }
  }

  private static void zero(FloatBuffer buf, int index, int n) {
    while (n > 0) {
      int k = Math.min(n, ZEROS.length);
      buf.put(index, ZEROS, 0, k);
      index += k;
      n -= k;
    }
  }

  /**
   * Per-layer key and value buffers from the engine's memory budget. Contents are not preserved
   * when a buffer grows: every user overwrites the region it reads next (a run's outputs, or a
   * rebuild).
   *
   * <p>Where the platform has them, the buffers lie in a {@link ReservedRegion} sized for the most
   * one buffer may take: growing then only counts the larger capacity against the budget (nothing
   * is allocated, zeroed or faulted in beyond what a run writes), and shrinking hands the memory
   * above the new capacity back to the system. Otherwise each growth is a new direct buffer.
   */
  private final class KvArena {
    private final String what;
    final FloatBuffer[] keys = new FloatBuffer[cfg.nLayer()];
    final FloatBuffer[] values = new FloatBuffer[cfg.nLayer()];
    private ReservedRegion region;
    private long capacity; // floats per buffer counted against the budget, in a region
    private long regionFloats; // floats per buffer the region has room for

    KvArena(String what) {
      this.what = what;
    }

    /** Every layer's key and value buffers hold at least {@code floats}. */
    void ensure(long floats) {
      if (region != null || (keys[0] == null && openRegion())) {
        ensureInRegion(floats);
        return;
      }
      long t0 = System.nanoTime();
      boolean grew = false;
      for (int i = 0; i < keys.length; i++) {
        FloatBuffer k = keys[i];
        FloatBuffer v = values[i];
        keys[i] = memory.ensure(keys[i], floats, what);
        values[i] = memory.ensure(values[i], floats, what);
        grew |= keys[i] != k || values[i] != v;
      }
      if (grew) noteRemake(t0);
    }

    /** What the arena holds now. */
    long heldBytes() {
      if (region != null) return bytes(capacity);
      return keys[0] == null ? 0 : 2L * keys.length * keys[0].capacity() * Float.BYTES;
    }

    /**
     * Like {@link #ensure}, and hands back buffers far larger than needed (load dropped); in a
     * region, whatever lies above the need.
     */
    void fit(long floats) {
      long slack = Math.max(floats, 1 << 18);
      if (region != null) {
        // Exactly the need (madvise hands back only whole pages above it)
        if (capacity > floats) shrinkInRegion(floats);
      } else if (keys[0] != null && keys[0].capacity() > floats + slack) {
        release();
      }
      ensure(floats);
    }

    /** Every buffer's key and value pair of {@code floats} each, in bytes. */
    private long bytes(long floats) {
      return EngineMemory.bytes(Math.multiplyExact(2L * keys.length, floats), Float.BYTES);
    }

    /**
     * Reserves a region for the largest buffers the budget allows (2 GiB each at most); false where
     * none can be had (the buffers are then direct buffers).
     */
    private boolean openRegion() {
      if (!reservedRegions || !ReservedRegion.available()) return false;
      long most = Math.min(memory.budget() / bytes(1), EngineMemory.MAX_BUFFER_BYTES / Float.BYTES);
      region = reserveLayers(keys, values, most * Float.BYTES, what);
      if (region == null) return false;
      regionFloats = most;
      capacity = 0;
      return true;
    }

    /** Grows the counted capacity to {@code floats}. */
    private void ensureInRegion(long floats) {
      if (floats <= capacity) return;
      if (floats > regionFloats) {
        throw new EngineMemoryException(
            what
                + " needs one buffer of "
                + EngineMemory.mib(floats * Float.BYTES)
                + " MiB; the engine's budget has room for "
                + EngineMemory.mib(regionFloats * Float.BYTES)
                + " MiB per buffer");
      }
      // No headroom: growing costs nothing here, and headroom beyond the need could take the
      // budget another buffer of the admission plan needs
      memory.reserve(bytes(floats) - bytes(capacity), what);
      capacity = floats;
    }

    /** Counts {@code floats} per buffer and gives the memory above them back to the system. */
    private void shrinkInRegion(long floats) {
      long bufferBytes = regionFloats * Float.BYTES;
      long tail = (capacity - floats) * Float.BYTES;
      for (int b = 0; b < 2 * keys.length; b++) {
        region.decommit(b * bufferBytes + floats * Float.BYTES, tail);
      }
      memory.unreserve(bytes(capacity) - bytes(floats));
      capacity = floats;
    }

    void release() {
      if (region != null) {
        memory.unreserve(heldBytes());
        closeLayers(region, keys, values);
        region = null;
        capacity = 0;
        return;
      }
      for (int i = 0; i < keys.length; i++) {
        memory.release(keys[i]);
        memory.release(values[i]);
        keys[i] = null;
        values[i] = null;
      }
    }
  }

  /**
   * The slot layout's KV: per layer, key and value buffers of {@code (slots, n_head, columns,
   * head_dim)}; slot i holds one row's tokens at columns [0, len). Grows by half in either
   * dimension when a newcomer needs more (copying only live columns), and is handed back when idle.
   */
  private final class SlotArena {
    final FloatBuffer[] keys = new FloatBuffer[cfg.nLayer()];
    final FloatBuffer[] values = new FloatBuffer[cfg.nLayer()];
    int slots;
    int columns;

    /** Floats of one slot in one layer's key (or value) buffer. */
    long slotFloats() {
      return (long) cfg.nHead() * columns * cfg.headDim();
    }

    /** Index of column 0 of head {@code h} in slot {@code slot}. */
    int offset(int slot, int h) {
      return Math.toIntExact(slot * slotFloats() + (long) h * columns * cfg.headDim());
    }

    FloatBuffer view(FloatBuffer buf, int first, int b) {
      return buf.slice(Math.toIntExact(first * slotFloats()), Math.toIntExact(b * slotFloats()));
    }

    /** At least {@code needSlots} slots of at least {@code needColumns} columns. */
    void ensure(int needSlots, int needColumns) {
      ensure(needSlots, needColumns, options.maxContext());
    }

    /**
     * At least {@code needSlots} slots of at least {@code needColumns} columns; growing by half,
     * but to no more than {@code maxColumns} columns (the widest reservation).
     */
    void ensure(int needSlots, int needColumns, int maxColumns) {
      if (keys[0] != null && needSlots <= slots && needColumns <= columns) return;
      int s = Math.max(needSlots, Math.min(options.maxBatchRows(), slots + slots / 2));
      int c =
          Math.max(
              needColumns,
              Math.min(Math.min(options.maxContext(), maxColumns), columns + columns / 2));
      s = Math.max(s, slots);
      c = Math.max(c, columns);
      if (!fits(s, c)) {
        // The headroom is a convenience; admission planned only what the rows need. Live rows
        // sit in slots [0, needSlots) and need at most needColumns, so the exact need holds them.
        s = needSlots;
        c = needColumns;
      }
      remake(s, c);
    }

    /**
     * Whether an arena of {@code s} slots of {@code c} columns fits the budget while it is made.
     */
    boolean fits(int s, int c) {
      return memory.used() - heldBytes() + (keys.length + 1L) * layerBytes(s, c) <= memory.budget();
    }

    /** One layer's key and value buffers for {@code s} slots of {@code c} columns. */
    long layerBytes(int s, int c) {
      long floats = Math.multiplyExact((long) s * cfg.nHead(), (long) c * cfg.headDim());
      return EngineMemory.bytes(Math.multiplyExact(2L, floats), Float.BYTES);
    }

    /** What the arena holds now. */
    long heldBytes() {
      return keys[0] == null ? 0 : 2L * keys.length * keys[0].capacity() * Float.BYTES;
    }

    /**
     * Re-makes the arena with {@code s} slots of {@code c} columns (either may be smaller than now,
     * as long as every live row fits), keeping every live row's columns.
     */
    void remake(int s, int c) {
      long floats = Math.multiplyExact((long) s * cfg.nHead(), (long) c * cfg.headDim());
      long layerBytes = layerBytes(s, c);
      long oldBytes = heldBytes();
      if (!fits(s, c)) {
        throw new EngineMemoryException(
            "slot KV for "
                + s
                + " rows of "
                + c
                + " tokens needs "
                + EngineMemory.mib(keys.length * layerBytes)
                + " MiB; the engine's budget of "
                + EngineMemory.mib(memory.budget())
                + " MiB has "
                + EngineMemory.mib(memory.budget() - memory.used() + oldBytes - layerBytes)
                + " MiB for it");
      }
      // Layer by layer, so growing needs one layer's buffers beyond the new arena, not a second
      // arena. Only the first allocation may fail cleanly (nothing changed yet); a later one leaves
      // layers of two strides, so it fails the whole batch (the engine loop's catch).
      long t0 = System.nanoTime();
      List<Sequence> live = new ArrayList<>(rows);
      if (prefilling != null) live.addAll(prefilling);
      int d = cfg.headDim();
      for (int i = 0; i < keys.length; i++) {
        FloatBuffer[] kv = layerPair(floats, "slot KV", i);
        FloatBuffer k = kv[0];
        FloatBuffer v = kv[1];
        if (keys[i] != null) {
          for (Sequence row : live) {
            for (int h = 0; h < cfg.nHead(); h++) {
              int from = offset(row.slot, h);
              int to = Math.toIntExact(((long) row.slot * cfg.nHead() + h) * c * d);
              int n = Math.min(row.len, Math.min(c, columns)) * d;
              k.put(to, keys[i], from, n);
              v.put(to, values[i], from, n);
            }
          }
          memory.release(keys[i]);
          memory.release(values[i]);
        }
        keys[i] = k;
        values[i] = v;
      }
      slots = s;
      columns = c;
      noteRemake(t0);
    }

    /** Copies the first {@code len} columns of slot {@code from} into slot {@code to}. */
    void move(int from, int to, int len) {
      int d = cfg.headDim();
      for (int i = 0; i < keys.length; i++) {
        for (int h = 0; h < cfg.nHead(); h++) {
          keys[i].put(offset(to, h), keys[i], offset(from, h), len * d);
          values[i].put(offset(to, h), values[i], offset(from, h), len * d);
        }
      }
    }

    void release() {
      for (int i = 0; i < keys.length; i++) {
        memory.release(keys[i]);
        memory.release(values[i]);
        keys[i] = null;
        values[i] = null;
      }
      slots = 0;
      columns = 0;
    }
  }

  /**
   * The paged layout's KV: per layer, key and value pools of {@code (n_head, pages, page_tokens,
   * head_dim)}. A row takes pages as its tokens need them and gives them back when it leaves; the
   * pool grows (a sixteenth beyond the need, page indices kept) when the free pages run out, and is
   * re-made smaller (pages renumbered) when far fewer are in use, and handed back when idle.
   */
  private final class PagePool {
    static final int MIN_PAGES = 4;
    final int pageTokens;
    final FloatBuffer[] keys = new FloatBuffer[cfg.nLayer()];
    final FloatBuffer[] values = new FloatBuffer[cfg.nLayer()];
    int pages; // pages counted against the budget, [0, pages) numbered
    int stride; // pages per head in the buffers' layout: pages, or all a reserved region can hold
    private int[] free = new int[0];
    private int freeCount;
    // The buffers' address space, reserved for the most pages the budget allows; null when they
    // are JVM direct buffers of exactly `pages` pages (re-made to grow or shrink)
    private ReservedRegion region;

    PagePool(int pageTokens) {
      this.pageTokens = pageTokens;
    }

    /** Floats of one page of one head. */
    int pageFloats() {
      return pageTokens * cfg.headDim();
    }

    /** Index of page {@code page} of head {@code h} in a layer's key (or value) pool. */
    int offset(int page, int h) {
      return Math.toIntExact(((long) h * stride + page) * pageFloats());
    }

    int inUse() {
      return pages - freeCount;
    }

    /** What the pool holds now (counted against the budget). */
    long heldBytes() {
      if (region != null) return keys.length * layerBytes(pages);
      return keys[0] == null ? 0 : 2L * keys.length * keys[0].capacity() * Float.BYTES;
    }

    /** One layer's key and value pools of {@code n} pages. */
    long layerBytes(int n) {
      long floats = Math.multiplyExact((long) cfg.nHead() * n, (long) pageFloats());
      return EngineMemory.bytes(Math.multiplyExact(2L, floats), Float.BYTES);
    }

    /** Whether a pool of {@code n} pages fits the budget while it is made (one layer at a time). */
    boolean fits(int n) {
      return memory.used() - heldBytes() + (keys.length + 1L) * layerBytes(n) <= memory.budget();
    }

    /**
     * A pool size for {@code need} pages in use. A sixteenth of headroom: KV held stays within
     * about 1.07x of the pages in use, and a pool that grows token by token is re-made once per
     * sixteenth of growth, not every page.
     */
    private int withHeadroom(int need) {
      return Math.max(MIN_PAGES, need + Math.max(need / 16, 1));
    }

    /** At least {@code k} free pages, growing the pool when needed. */
    void ensureFree(int k) {
      if (keys[0] != null && freeCount >= k) return;
      if (growth != null) {
        adoptGrowth(true); // never re-made while a larger pool is on its way
        if (keys[0] != null && freeCount >= k) return;
      }
      int need = Math.addExact(inUse(), k);
      // In a region a growth only counts pages, so it takes just what is needed
      int target = growsFree() ? Math.max(need, MIN_PAGES) : withHeadroom(need);
      if (!fits(target)) target = need; // the headroom is a convenience, the plan is the need
      remake(target, null);
    }

    // A larger pool being allocated on the allocator thread (key then value buffer of each layer)
    private Future<ByteBuffer[]> growth;
    private int growthPages; // its size; reserved: keys.length * layerBytes(growthPages)
    private boolean growthFailed;

    boolean growing() {
      return growth != null;
    }

    /** Whether growing is free: the pool lies in a reserved region (or will), nothing is copied. */
    boolean growsFree() {
      return region != null || (keys[0] == null && regionWanted());
    }

    /**
     * Whether {@code k} pages are free now. When they are not, starts allocating a pool with room
     * for them (and a sixteenth more) on the allocator thread, unless one is on its way already,
     * and answers false: the caller goes on without them (the running rows decode while the new
     * memory is faulted in) and asks again later. Answers true where the caller should grow the
     * pool in place ({@link #ensureFree}, which may fail cleanly): when the new pool is small
     * (cheap to make in place), when the old and the new pool together do not fit the budget, or
     * when the last background allocation failed.
     */
    boolean freeOrGrowing(int k) {
      if (keys[0] != null && freeCount >= k) return true;
      if (growsFree()) return true; // nothing to copy
      // One on its way, even one too small for this: wait for it to land (never block on it here),
      // and the next call starts a larger one if still needed
      if (growth != null) return false;
      int need = Math.addExact(inUse(), k);
      if (growthFailed) {
        growthFailed = false;
        return true;
      }
      int target = withHeadroom(need);
      long buffer = layerBytes(target) / 2;
      long bytes = Math.multiplyExact(2L * keys.length, buffer);
      if (bytes < backgroundGrowthBytes
          || buffer > EngineMemory.MAX_BUFFER_BYTES
          || memory.used() + bytes > memory.budget()) {
        return true;
      }
      memory.reserve(bytes, "KV pool");
      growthPages = target;
      int buffers = 2 * keys.length;
      growth =
          allocator()
              .submit(
                  () -> {
                    ByteBuffer[] made = new ByteBuffer[buffers];
                    try {
                      for (int i = 0; i < buffers; i++) {
                        made[i] = memory.allocateCounted(buffer, "KV pool");
                      }
                    } catch (RuntimeException e) {
                      for (ByteBuffer b : made) {
                        if (b != null) EngineMemory.discard(b);
                      }
                      throw e;
                    }
                    return made;
                  });
      return false;
    }

    /**
     * Puts the pool from the allocator thread in place, waiting for it when {@code wait}: copies
     * every page (indices kept) and frees the old pool. When its allocation failed, gives the
     * reservation back and changes nothing; the next growth is then made in place.
     *
     * @return whether the pool grew
     */
    boolean adoptGrowth(boolean wait) {
      if (growth == null || (!wait && !growth.isDone())) return false;
      ByteBuffer[] made;
      boolean interrupted = false;
      try {
        while (true) {
          try {
            made = growth.get();
            break;
          } catch (InterruptedException e) {
            interrupted = true;
          }
        }
      } catch (ExecutionException e) {
        LOG.warning(
            "allocating a KV pool of "
                + growthPages
                + " pages in the background failed: "
                + e.getCause().getMessage());
        memory.unreserve(keys.length * layerBytes(growthPages));
        growth = null;
        growthFailed = true;
        return false;
      } finally {
        if (interrupted) Thread.currentThread().interrupt();
      }
      growth = null;
      long t0 = System.nanoTime();
      int n = growthPages;
      for (int i = 0; i < keys.length; i++) {
        FloatBuffer k = memory.adopt(made[2 * i]); // counted since the reservation
        FloatBuffer v = memory.adopt(made[2 * i + 1]);
        if (keys[i] != null) {
          copyPages(keys[i], k, n);
          copyPages(values[i], v, n);
          memory.release(keys[i]);
          memory.release(values[i]);
        }
        keys[i] = k;
        values[i] = v;
      }
      backgroundPages.addAndGet(n - pages);
      growFreeList(n);
      pages = n;
      stride = n;
      noteRemake(t0);
      return true;
    }

    /** Copies a layer's {@link #pages} pages into {@code to}, a buffer of {@code n} pages. */
    private void copyPages(FloatBuffer from, FloatBuffer to, int n) {
      int pf = pageFloats();
      int count = Math.min(pages, n) * pf;
      for (int h = 0; h < cfg.nHead(); h++) to.put(h * n * pf, from, h * pages * pf, count);
    }

    /** The free list after growing from {@link #pages} to {@code n} pages, indices kept. */
    private void growFreeList(int n) {
      int[] grown = java.util.Arrays.copyOf(free, n);
      for (int p = n - 1; p >= pages; p--) grown[freeCount++] = p;
      free = grown;
    }

    /** Gives {@code s} pages until it has {@code count}. */
    void take(Sequence s, int count) {
      if (s.pages.length < count) s.pages = java.util.Arrays.copyOf(s.pages, count + 4);
      while (s.pageCount < count) s.pages[s.pageCount++] = free[--freeCount];
    }

    /** Takes back all of {@code s}'s pages. */
    void give(Sequence s) {
      for (int i = 0; i < s.pageCount; i++) free[freeCount++] = s.pages[i];
      s.pageCount = 0;
    }

    /**
     * Re-makes the pool with {@code n} pages, one layer at a time. Growing ({@code live} null)
     * keeps every page where it is; shrinking renumbers the pages of {@code live} (every row that
     * holds pages) to [0, in use) and rewrites their page lists.
     */
    void remake(int n, List<Sequence> live) {
      long layer = layerBytes(n);
      if (!fits(n)) {
        throw new EngineMemoryException(
            "KV pool of "
                + n
                + " pages of "
                + pageTokens
                + " tokens needs "
                + EngineMemory.mib(keys.length * layer)
                + " MiB; the engine's budget of "
                + EngineMemory.mib(memory.budget())
                + " MiB has "
                + EngineMemory.mib(memory.budget() - memory.used() + heldBytes() - layer)
                + " MiB for it");
      }
      if (region != null || (keys[0] == null && openRegion(n))) {
        resizeInRegion(n, live);
        return;
      }
      long t0 = System.nanoTime();
      int[] map = null; // shrinking: old page -> new page
      if (live != null) {
        map = new int[pages];
        int next = 0;
        for (Sequence s : live) {
          for (int i = 0; i < s.pageCount; i++) map[s.pages[i]] = next++;
        }
        if (next > n) throw new IllegalStateException(next + " pages in use, pool of " + n);
      }
      long floats = Math.multiplyExact((long) cfg.nHead() * n, (long) pageFloats());
      int pf = pageFloats();
      for (int i = 0; i < keys.length; i++) {
        FloatBuffer[] kv = layerPair(floats, "KV pool", i);
        FloatBuffer k = kv[0];
        FloatBuffer v = kv[1];
        if (keys[i] != null) {
          if (map == null) {
            copyPages(keys[i], k, n);
            copyPages(values[i], v, n);
          } else {
            for (int h = 0; h < cfg.nHead(); h++) {
              int from = h * pages * pf;
              int to = h * n * pf;
              for (Sequence s : live) {
                for (int p = 0; p < s.pageCount; p++) {
                  int old = s.pages[p];
                  k.put(to + map[old] * pf, keys[i], from + old * pf, pf);
                  v.put(to + map[old] * pf, values[i], from + old * pf, pf);
                }
              }
            }
          }
          memory.release(keys[i]);
          memory.release(values[i]);
        }
        keys[i] = k;
        values[i] = v;
      }
      int used;
      if (map != null) {
        used = 0;
        for (Sequence s : live) {
          for (int p = 0; p < s.pageCount; p++) s.pages[p] = map[s.pages[p]];
          used += s.pageCount;
        }
        free = new int[n];
        freeCount = 0;
        for (int p = n - 1; p >= used; p--) free[freeCount++] = p;
      } else {
        growFreeList(n);
      }
      pages = n;
      stride = n;
      noteRemake(t0);
    }

    /**
     * Only on the CPU provider: the pool's tensor spans the whole region, which ONNX Runtime reads
     * in place on the CPU (only the pages the block table names) but would copy whole to a GPU.
     */
    private boolean regionWanted() {
      return reservedRegions && ReservedRegion.available() && "CPU".equals(model.provider());
    }

    /**
     * Reserves the address space of the largest pool the budget could hold (and at least {@code n}
     * pages), one buffer per layer and kind over it; false (the pool is made of direct buffers)
     * where that cannot be had.
     */
    private boolean openRegion(int n) {
      if (!regionWanted()) return false;
      long buffer = layerBytes(1) / 2; // one page of every head, one kind of one layer
      long byBudget = memory.budget() / (keys.length * layerBytes(1));
      long byBuffer = EngineMemory.MAX_BUFFER_BYTES / buffer;
      int most = (int) Math.min(Math.min(byBudget, byBuffer), Integer.MAX_VALUE / 2);
      if (most < n) return false;
      region = reserveLayers(keys, values, Math.multiplyExact(buffer, (long) most), "KV pool");
      if (region == null) return false;
      stride = most;
      pages = 0;
      return true;
    }

    /**
     * Resizes a pool in its reserved region. Growing only counts the new pages: nothing is copied
     * or allocated, the memory comes page by page as rows first write it. Shrinking moves the pages
     * of {@code live} that lie at or above {@code n} to free pages below it, and gives the memory
     * of pages {@code [n, pages)} of every head back to the system.
     */
    private void resizeInRegion(int n, List<Sequence> live) {
      if (n > stride)
        throw new IllegalStateException("pool of " + n + " pages, room for " + stride);
      if (n >= pages) {
        memory.reserve(keys.length * (layerBytes(n) - layerBytes(pages)), "KV pool");
        growFreeList(n);
        pages = n;
        return;
      }
      long t0 = System.nanoTime();
      boolean[] taken = new boolean[n];
      int held = 0;
      for (Sequence s : live) {
        held += s.pageCount;
        for (int i = 0; i < s.pageCount; i++) {
          if (s.pages[i] < n) taken[s.pages[i]] = true;
        }
      }
      if (held > n) throw new IllegalStateException(held + " pages in use, pool of " + n);
      int next = 0;
      int moved = 0;
      int pf = pageFloats();
      for (Sequence s : live) {
        for (int i = 0; i < s.pageCount; i++) {
          int old = s.pages[i];
          if (old < n) continue;
          while (taken[next]) next++; // live pages are at most n: a free one is below n
          taken[next] = true;
          for (int layer = 0; layer < keys.length; layer++) {
            FloatBuffer k = keys[layer].duplicate();
            FloatBuffer v = values[layer].duplicate();
            for (int h = 0; h < cfg.nHead(); h++) {
              keys[layer].put(offset(next, h), k, offset(old, h), pf);
              values[layer].put(offset(next, h), v, offset(old, h), pf);
            }
          }
          s.pages[i] = next;
          moved++;
        }
      }
      free = new int[n];
      freeCount = 0;
      for (int p = n - 1; p >= 0; p--) {
        if (!taken[p]) free[freeCount++] = p; // the lowest on top: rows fill the pool from 0
      }
      long bufferBytes = (long) stride * cfg.nHead() * pf * Float.BYTES;
      long tail = (long) (pages - n) * pf * Float.BYTES;
      for (int b = 0; b < 2 * keys.length; b++) {
        for (int h = 0; h < cfg.nHead(); h++) {
          region.decommit(b * bufferBytes + (long) offset(n, h) * Float.BYTES, tail);
        }
      }
      memory.unreserve(keys.length * (layerBytes(pages) - layerBytes(n)));
      pages = n;
      if (moved > 0) noteRemake(t0);
    }

    void release() {
      if (region != null) {
        memory.unreserve(heldBytes());
        closeLayers(region, keys, values);
        region = null;
        pages = 0;
        stride = 0;
        free = new int[0];
        freeCount = 0;
        return;
      }
      adoptGrowth(true); // then freed with the rest
      for (int i = 0; i < keys.length; i++) {
        memory.release(keys[i]);
        memory.release(values[i]);
        keys[i] = null;
        values[i] = null;
      }
      pages = 0;
      stride = 0;
      free = new int[0];
      freeCount = 0;
    }
  }
}
