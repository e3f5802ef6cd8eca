package dev.prefixgate.runtime;

import dev.prefixgate.PrefixgateConfig;
import dev.prefixgate.engine.BaseModel;
import dev.prefixgate.engine.BloomModel;
import dev.prefixgate.engine.Engine;
import dev.prefixgate.engine.EngineOptions;
import dev.prefixgate.engine.ModelWeights;
import dev.prefixgate.engine.PrefixCache;
import io.quarkus.runtime.Startup;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.inject.Disposes;
import jakarta.enterprise.inject.Produces;
import jakarta.inject.Singleton;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;

/**
 * The served model, its identity, the engine and the prefix cache, as CDI beans for whoever needs
 * one (injected by type; there is no locator). Created at start-up, so a bad model directory stops
 * the gateway with the engine's message; closed at shutdown, engine before model.
 */
@ApplicationScoped
public class EngineProducers {

  static EngineOptions options(PrefixgateConfig.EngineSettings e) {
    return new EngineOptions(
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
        e.prefillStepTokens(),
        e.prefillStepPastTokens());
  }

  @Produces
  @Singleton
  @Startup
  BloomModel model(PrefixgateConfig config) {
    return BloomModel.load(Path.of(config.model().dir()), options(config.engine()));
  }

  /** The served model's name and fingerprint, which adapters and events are checked against. */
  @Produces
  @Singleton
  BaseModel base(BloomModel model, PrefixgateConfig config) {
    try {
      return BaseModel.of(model, config.model().name().orElse(null));
    } catch (IOException io) {
      throw new UncheckedIOException("cannot fingerprint the model in " + model.dir(), io);
    }
  }

  /**
   * What the served weights are (float32, or a quantized copy's {@code prefixgate-model.json});
   * read at start-up so that a malformed file stops the gateway instead of a later request.
   */
  @Produces
  @Singleton
  @Startup
  ModelWeights weights(BloomModel model) {
    return ModelWeights.read(model.dir());
  }

  @Produces
  @Singleton
  @Startup
  Engine engine(BloomModel model, PrefixgateConfig config) {
    Engine engine = new Engine(model, options(config.engine()));
    engine.reservedRegions(config.engine().reservedRegions()); // before the first request
    return engine;
  }

  @Produces
  @Singleton
  PrefixCache cache(PrefixgateConfig config) {
    return new PrefixCache(config.cache().maxBytes());
  }

  void closeEngine(@Disposes Engine engine) {
    engine.close();
  }

  void closeModel(@Disposes BloomModel model) {
    model.close();
  }
}
