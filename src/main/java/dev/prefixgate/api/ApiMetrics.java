package dev.prefixgate.api;

import dev.prefixgate.Gateway;
import dev.prefixgate.engine.Completion;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.time.Duration;

/** Request, token and latency metrics for {@code /q/metrics}, tagged by tenant. */
@ApplicationScoped
public class ApiMetrics {
  @Inject MeterRegistry registry;
  @Inject Gateway gateway;

  void register(@Observes StartupEvent ignored) {
    Gauge.builder("prefixgate.queue.depth", gateway, g -> g.engine().stats().queued())
        .description("requests waiting for a batch row")
        .register(registry);
    Gauge.builder("prefixgate.batch.rows", gateway, g -> g.engine().stats().running())
        .description("sequences in the running batch")
        .register(registry);
    Gauge.builder("prefixgate.cache.hits", gateway, g -> g.cache().hits()).register(registry);
    Gauge.builder("prefixgate.cache.misses", gateway, g -> g.cache().misses()).register(registry);
    Gauge.builder("prefixgate.cache.bytes", gateway, g -> g.cache().bytes()).register(registry);
  }

  void request(String tenant, int status) {
    Counter.builder("prefixgate.requests")
        .tag("tenant", tenant)
        .tag("status", Integer.toString(status))
        .register(registry)
        .increment();
  }

  void completed(String tenant, Completion c, int promptTokens) {
    request(tenant, c.reason() == dev.prefixgate.engine.FinishReason.ERROR ? 500 : 200);
    Counter.builder("prefixgate.tokens.prompt")
        .tag("tenant", tenant)
        .register(registry)
        .increment(promptTokens);
    Counter.builder("prefixgate.tokens.completion")
        .tag("tenant", tenant)
        .register(registry)
        .increment(c.completionTokens());
    if (c.firstTokenNanos() >= 0) {
      Timer.builder("prefixgate.ttft")
          .description("time to first token")
          .publishPercentileHistogram()
          .register(registry)
          .record(Duration.ofNanos(c.firstTokenNanos()));
    }
  }

  void interToken(long nanos) {
    Timer.builder("prefixgate.inter_token")
        .description("time between two tokens of one stream")
        .publishPercentileHistogram()
        .register(registry)
        .record(Duration.ofNanos(nanos));
  }
}
