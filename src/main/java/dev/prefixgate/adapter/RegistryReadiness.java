package dev.prefixgate.adapter;

import dev.prefixgate.PrefixgateConfig;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/**
 * Ready while the serving directory may serve: the database answered within {@code
 * prefixgate.registry.max-stale-seconds}. A database outage alone does not take every replica out
 * of the balancer (the datasource's own readiness check is off for that reason); the data says
 * whether the database answers.
 */
@Readiness
@ApplicationScoped
public class RegistryReadiness implements HealthCheck {
  @Inject ServingDirectory directory;
  @Inject PrefixgateConfig config;

  @Override
  public HealthCheckResponse call() {
    boolean fresh =
        directory.reachable() || directory.staleSeconds() <= config.registry().maxStaleSeconds();
    return HealthCheckResponse.named("registry")
        .status(fresh)
        .withData("database", directory.reachable() ? "reachable" : "unreachable")
        .withData("epoch", directory.epoch())
        .withData("staleSeconds", directory.reachable() ? 0 : directory.staleSeconds())
        .build();
  }
}
