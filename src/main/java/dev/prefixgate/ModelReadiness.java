package dev.prefixgate;

import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/** Ready once the model is loaded and the engine runs (the database has its own check). */
@Readiness
@ApplicationScoped
public class ModelReadiness implements HealthCheck {
  @Inject Gateway gateway;

  @Override
  public HealthCheckResponse call() {
    var stats = gateway.engine().stats();
    return HealthCheckResponse.named("model")
        .up()
        .withData("dir", gateway.model().dir().toString())
        .withData("provider", gateway.model().provider())
        .withData("queued", stats.queued())
        .withData("running", stats.running())
        .build();
  }
}
