package dev.prefixgate.api;

import dev.prefixgate.engine.Completion;
import dev.prefixgate.engine.Engine;
import dev.prefixgate.engine.FinishReason;
import dev.prefixgate.engine.PrefixCache;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.quarkus.runtime.StartupEvent;
import jakarta.annotation.PostConstruct;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/** Request, token and latency metrics for {@code /q/metrics}, tagged by tenant. */
@ApplicationScoped
public class ApiMetrics {
  @Inject MeterRegistry registry;
  @Inject Engine engine;
  @Inject PrefixCache prefixCache;

  @PostConstruct
  void timers() {
    ttft =
        Timer.builder("prefixgate.ttft")
            .description("time to first token")
            .publishPercentileHistogram()
            .register(registry);
    interToken =
        Timer.builder("prefixgate.inter_token")
            .description("time between two tokens of one stream")
            .publishPercentileHistogram()
            .register(registry);
  }

  void register(@Observes StartupEvent ignored) {
    Gauge.builder("prefixgate.queue.depth", engine, e -> e.stats().queued())
        .description("requests waiting for a batch row")
        .register(registry);
    Gauge.builder("prefixgate.batch.rows", engine, e -> e.stats().running())
        .description("sequences in the running batch")
        .register(registry);
    Gauge.builder("prefixgate.cache.hits", prefixCache, c -> c.hits()).register(registry);
    Gauge.builder("prefixgate.cache.misses", prefixCache, c -> c.misses()).register(registry);
    Gauge.builder("prefixgate.cache.bytes", prefixCache, c -> c.bytes()).register(registry);
    Gauge.builder("prefixgate.cache.leases", prefixCache, c -> c.leases())
        .description("prefix-cache leases held by requests in flight")
        .register(registry);
  }

  // Meters are built once and kept: completed() and interToken() run on the engine thread for
  // every request and every token, where building and registering a meter each time is waste.
  private Timer ttft;
  private Timer interToken;
  private final ConcurrentHashMap<String, Counter> counters = new ConcurrentHashMap<>();

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

  void completed(String tenant, Completion c, int promptTokens) {
    request(tenant, c.reason() == FinishReason.ERROR ? 500 : 200);
    counter("prefixgate.tokens.prompt", tenant, null).increment(promptTokens);
    counter("prefixgate.tokens.completion", tenant, null).increment(c.completionTokens());
    if (c.firstTokenNanos() >= 0) ttft.record(c.firstTokenNanos(), TimeUnit.NANOSECONDS);
  }

  void interToken(long nanos) {
    interToken.record(nanos, TimeUnit.NANOSECONDS);
  }
}
