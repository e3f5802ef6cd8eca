package dev.prefixgate;

import dev.prefixgate.adapter.PrefixCache;
import dev.prefixgate.engine.BaseModel;
import dev.prefixgate.engine.BloomModel;
import dev.prefixgate.engine.Engine;
import dev.prefixgate.engine.EngineOptions;
import io.quarkus.runtime.Startup;
import jakarta.annotation.PreDestroy;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;

/**
 * Owns the served model, the engine and the prefix cache for the application's lifetime. Loaded at
 * start-up, so a bad model directory stops the gateway with the engine's message.
 */
@Startup
@ApplicationScoped
public class Gateway {
  private final BloomModel model;
  private final BaseModel base;
  private final Engine engine;
  private final PrefixCache cache;

  @Inject
  public Gateway(PrefixgateConfig config) {
    PrefixgateConfig.EngineSettings e = config.engine();
    EngineOptions options =
        new EngineOptions(
            e.intraOpThreads(),
            e.allowSpinning(),
            e.cuda(),
            e.maxBatchRows(),
            e.maxBatchTokens(),
            e.maxPrefillTokens(),
            e.maxQueue(),
            e.maxContext(),
            e.memoryBudgetBytes(),
            e.maxQueuedPerTenant(),
            e.maxRowsPerTenant(),
            e.fairShare(),
            e.prefillStepTokens());
    this.model = BloomModel.load(Path.of(config.model().dir()), options);
    try {
      this.base = BaseModel.of(model, config.model().name().orElse(null));
    } catch (IOException io) {
      model.close();
      throw new UncheckedIOException("cannot fingerprint the model in " + model.dir(), io);
    }
    this.engine = new Engine(model, options);
    this.cache = new PrefixCache(config.cache().maxBytes());
  }

  public BloomModel model() {
    return model;
  }

  /** The served model's name and fingerprint, as adapters and events are checked against. */
  public BaseModel base() {
    return base;
  }

  public Engine engine() {
    return engine;
  }

  public PrefixCache cache() {
    return cache;
  }

  @PreDestroy
  void close() {
    engine.close();
    model.close();
  }
}
