package dev.prefixgate.adapter;

import dev.prefixgate.PrefixgateConfig;
import dev.prefixgate.tenant.RegistryDatabase;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.util.Optional;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/**
 * Ready while the serving directory may serve: the database answered within {@code
 * prefixgate.registry.max-stale-seconds}. A database outage alone does not take every replica out
 * of the balancer (the datasource's own readiness check is off for that reason); the data says
 * whether the database answers, and which kind this replica uses (h2 or postgresql).
 */
@Readiness
@ApplicationScoped
public class RegistryReadiness implements HealthCheck {
  @Inject ServingDirectory directory;
  @Inject PrefixgateConfig config;

  @ConfigProperty(name = "quarkus.datasource.jdbc.url")
  Optional<String> jdbcUrl;

  @Override
  public HealthCheckResponse call() {
    boolean fresh =
        directory.reachable() || directory.staleSeconds() <= config.registry().maxStaleSeconds();
    return HealthCheckResponse.named("registry")
        .status(fresh)
        .withData("database", directory.reachable() ? "reachable" : "unreachable")
        // Which database this replica serves from (chosen at start from the JDBC URL).
        .withData("databaseKind", RegistryDatabase.unitFor(jdbcUrl.orElse(null)))
        .withData("epoch", directory.epoch())
        .withData("staleSeconds", directory.reachable() ? 0 : directory.staleSeconds())
        .build();
  }
}
