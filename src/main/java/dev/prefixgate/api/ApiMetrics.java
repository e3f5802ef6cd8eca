package dev.prefixgate.api;

import dev.prefixgate.engine.Completion;
import dev.prefixgate.engine.Engine;
import dev.prefixgate.engine.FinishReason;
import dev.prefixgate.engine.PrefixCache;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.quarkus.runtime.StartupEvent;
import jakarta.annotation.PostConstruct;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Request, token, latency, queue and memory metrics for {@code /q/metrics} (the table in
 * docs/operations.md). Names follow Prometheus conventions: counters end in {@code _total}, times
 * are histograms in seconds, sizes in {@code _bytes}, fractions in {@code _ratio}.
 *
 * <p>Label cardinality is bounded by what operators create, never by what clients send: {@code
 * tenant} is an authenticated tenant (or {@code -}), {@code adapter} an adapter name that resolved
 * for it (versions are not labels), and at most {@link #MAX_ADAPTER_SERIES} tenant/adapter pairs
 * get series of their own; later pairs are counted under {@code adapter="other"}.
 */
@ApplicationScoped
public class ApiMetrics {
  /** Tenant/adapter pairs with their own per-adapter series; the rest share "other". */
  static final int MAX_ADAPTER_SERIES = 1000;

  @Inject MeterRegistry registry;
  @Inject Engine engine;
  @Inject PrefixCache prefixCache;

  @PostConstruct
  void timers() {
    ttft =
        Timer.builder("prefixgate.ttft")
            .description("time from submit to the first generated token")
            .publishPercentileHistogram()
            .register(registry);
    interToken =
        Timer.builder("prefixgate.inter_token")
            .description("time between two tokens of one stream")
            .publishPercentileHistogram()
            .register(registry);
    duration =
        Timer.builder("prefixgate.request.duration")
            .description("time from submit to the last token (or the error or cancellation)")
            .serviceLevelObjectives(seconds(LATENCY_BUCKETS))
            .register(registry);
    queueTime =
        Timer.builder("prefixgate.request.queue.time")
            .description("time from submit to admission into the running batch")
            .serviceLevelObjectives(seconds(QUEUE_BUCKETS))
            .register(registry);
    promptLength =
        DistributionSummary.builder("prefixgate.request.prompt.tokens")
            .description("prompt tokens per request (the adapter's virtual tokens not included)")
            .serviceLevelObjectives(TOKEN_BUCKETS)
            .register(registry);
    generationLength =
        DistributionSummary.builder("prefixgate.request.generation.tokens")
            .description("generated tokens per request")
            .serviceLevelObjectives(TOKEN_BUCKETS)
            .register(registry);
  }

  private static final double[] LATENCY_BUCKETS = {
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600
  };
  private static final double[] QUEUE_BUCKETS = {
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60
  };
  private static final double[] TOKEN_BUCKETS = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192
  };

  private static Duration[] seconds(double[] s) {
    Duration[] out = new Duration[s.length];
    for (int i = 0; i < s.length; i++) out[i] = Duration.ofNanos(Math.round(s[i] * 1e9));
    return out;
  }

  void register(@Observes StartupEvent ignored) {
    Gauge.builder("prefixgate.requests.waiting", engine, e -> e.stats().queued())
        .description("requests waiting for a batch row")
        .register(registry);
    Gauge.builder("prefixgate.requests.running", engine, e -> e.stats().running())
        .description("requests in the running batch")
        .register(registry);
    // The older names of the two gauges above, kept for existing scrapers (bench/soak.py).
    Gauge.builder("prefixgate.queue.depth", engine, e -> e.stats().queued())
        .description("requests waiting for a batch row (= prefixgate_requests_waiting)")
        .register(registry);
    Gauge.builder("prefixgate.batch.rows", engine, e -> e.stats().running())
        .description("sequences in the running batch (= prefixgate_requests_running)")
        .register(registry);
    Gauge.builder("prefixgate.engine.memory.bytes", engine, e -> e.stats().memoryBytes())
        .description("bytes the engine holds now: KV arena, prefill buffers, logits")
        .register(registry);
    Gauge.builder(
            "prefixgate.engine.memory.budget.bytes", engine, e -> e.stats().memoryBudgetBytes())
        .description("the engine's memory budget")
        .register(registry);
    Gauge.builder("prefixgate.engine.kv.held.bytes", engine, e -> e.stats().kvHeldBytes())
        .description("bytes of KV buffers the engine holds (arenas or page pool)")
        .register(registry);
    Gauge.builder("prefixgate.engine.kv.live.bytes", engine, e -> e.stats().kvLiveBytes())
        .description("bytes the running and prefilling rows' KV tokens need")
        .register(registry);
    FunctionCounter.builder("prefixgate.engine.kv.remakes", engine, e -> e.stats().kvRemakes())
        .description("times the engine re-allocated its KV storage (arena or page pool)")
        .register(registry);
    FunctionCounter.builder(
            "prefixgate.engine.kv.remake.seconds", engine, e -> e.stats().kvRemakeNanos() / 1e9)
        .description("seconds the engine thread spent re-allocating and copying KV storage")
        .register(registry);
    Gauge.builder("prefixgate.kv.usage.ratio", engine, ApiMetrics::kvUsage)
        .description("engine memory in use as a fraction of its budget, 0 to 1")
        .register(registry);
    FunctionCounter.builder("prefixgate.cache.hits", prefixCache, c -> c.hits())
        .description("prefix-cache lookups that found the adapter's KV resident")
        .register(registry);
    FunctionCounter.builder("prefixgate.cache.misses", prefixCache, c -> c.misses())
        .description("prefix-cache lookups that had to load the adapter's KV")
        .register(registry);
    Gauge.builder("prefixgate.cache.bytes", prefixCache, c -> c.bytes())
        .description("bytes of adapter KV resident in the prefix cache")
        .register(registry);
    Gauge.builder("prefixgate.cache.leases", prefixCache, c -> c.leases())
        .description("prefix-cache leases held by requests in flight")
        .register(registry);
  }

  static double kvUsage(Engine e) {
    Engine.Stats s = e.stats();
    return s.memoryBudgetBytes() <= 0 ? 0 : (double) s.memoryBytes() / s.memoryBudgetBytes();
  }

  // Meters are built once and kept: completed() and interToken() run on the engine thread for
  // every request and every token, where building and registering a meter each time is waste.
  private Timer ttft;
  private Timer interToken;
  private Timer duration;
  private Timer queueTime;
  private DistributionSummary promptLength;
  private DistributionSummary generationLength;
  private final ConcurrentHashMap<String, Counter> counters = new ConcurrentHashMap<>();
  private final ConcurrentHashMap<String, Boolean> adapterSeries = new ConcurrentHashMap<>();

  private Counter counter(String name, String tenant, String status) {
    return counters.computeIfAbsent(
        name + '|' + tenant + '|' + status,
        k -> {
          Counter.Builder b = Counter.builder(name).tag("tenant", tenant);
          return (status == null ? b : b.tag("status", status)).register(registry);
        });
  }

  void request(String tenant, int status) {
    counter("prefixgate.requests", tenant, Integer.toString(status)).increment();
  }

  /**
   * One finished request. {@code model} is what it ran on ({@code name@version}, or the base
   * model's name); the version is dropped for the adapter label.
   */
  void completed(String tenant, String model, Completion c, int promptTokens) {
    request(tenant, c.reason() == FinishReason.ERROR ? 500 : 200);
    counter("prefixgate.tokens.prompt", tenant, null).increment(promptTokens);
    counter("prefixgate.tokens.completion", tenant, null).increment(c.completionTokens());
    if (c.firstTokenNanos() >= 0) ttft.record(c.firstTokenNanos(), TimeUnit.NANOSECONDS);
    duration.record(c.totalNanos(), TimeUnit.NANOSECONDS);
    queueTime.record(c.queueNanos(), TimeUnit.NANOSECONDS);
    promptLength.record(promptTokens);
    generationLength.record(c.completionTokens());
    adapterCounter(tenant, adapterLabel(tenant, model), c.reason()).increment();
  }

  private String adapterLabel(String tenant, String model) {
    int at = model == null ? -1 : model.lastIndexOf('@');
    String adapter = model == null ? "-" : at > 0 ? model.substring(0, at) : model;
    String pair = tenant + '|' + adapter;
    if (adapterSeries.containsKey(pair)) return adapter;
    // Racy by at most a few pairs past the cap, which is harmless: the cap bounds, not counts.
    if (adapterSeries.size() >= MAX_ADAPTER_SERIES) return "other";
    adapterSeries.put(pair, Boolean.TRUE);
    return adapter;
  }

  private Counter adapterCounter(String tenant, String adapter, FinishReason reason) {
    String finish = reason.name().toLowerCase(Locale.ROOT);
    return counters.computeIfAbsent(
        "prefixgate.adapter.requests|" + tenant + '|' + adapter + '|' + finish,
        k ->
            Counter.builder("prefixgate.adapter.requests")
                .description("finished requests per tenant and adapter, by finish reason")
                .tag("tenant", tenant)
                .tag("adapter", adapter)
                .tag("finish_reason", finish)
                .register(registry));
  }

  /**
   * Requests of one tenant/adapter pair in the engine: admitted but no token yet, and streaming. A
   * request holds its pair from {@link #adapterAdmitted} on, so it looks the pair up once.
   */
  record AdapterLoad(AtomicInteger waiting, AtomicInteger running) {
    /** The request's first token: it moves from waiting to running. */
    void started() {
      waiting.decrementAndGet();
      running.incrementAndGet();
    }

    /** The request ended; {@code started} says whether {@link #started} was called for it. */
    void finished(boolean started) {
      (started ? running : waiting).decrementAndGet();
    }
  }

  private final ConcurrentHashMap<String, AdapterLoad> loads = new ConcurrentHashMap<>();

  /** The engine took a request for {@code model}: it waits for its first token. */
  AdapterLoad adapterAdmitted(String tenant, String model) {
    String adapter = adapterLabel(tenant, model);
    AdapterLoad load =
        loads.computeIfAbsent(
            tenant + '|' + adapter,
            k -> {
              AdapterLoad l = new AdapterLoad(new AtomicInteger(), new AtomicInteger());
              Gauge.builder("prefixgate.adapter.requests.waiting", l.waiting(), AtomicInteger::get)
                  .description("requests of this adapter admitted to the engine, no token yet")
                  .tag("tenant", tenant)
                  .tag("adapter", adapter)
                  .register(registry);
              Gauge.builder("prefixgate.adapter.requests.running", l.running(), AtomicInteger::get)
                  .description("requests of this adapter emitting tokens")
                  .tag("tenant", tenant)
                  .tag("adapter", adapter)
                  .register(registry);
              return l;
            });
    load.waiting().incrementAndGet();
    return load;
  }

  void interToken(long nanos) {
    interToken.record(nanos, TimeUnit.NANOSECONDS);
  }
}
