package dev.prefixgate.runtime;

import dev.prefixgate.engine.BloomModel;
import dev.prefixgate.engine.Engine;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/** Ready once the model is loaded and the engine runs (the database has its own check). */
@Readiness
@ApplicationScoped
public class ModelReadiness implements HealthCheck {
  @Inject BloomModel bloom;
  @Inject Engine engine;

  @Override
  public HealthCheckResponse call() {
    var stats = engine.stats();
    return HealthCheckResponse.named("model")
        .up()
        .withData("dir", bloom.dir().toString())
        .withData("provider", bloom.provider())
        .withData("queued", stats.queued())
        .withData("running", stats.running())
        .build();
  }
}
