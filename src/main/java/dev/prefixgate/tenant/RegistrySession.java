package dev.prefixgate.tenant;

import io.quarkus.hibernate.orm.PersistenceUnit;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.inject.Any;
import jakarta.enterprise.inject.Instance;
import jakarta.enterprise.inject.Produces;
import java.util.Optional;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.hibernate.Session;

/**
 * The registry's Hibernate session: that of the persistence unit {@link RegistryDatabase} chose at
 * start. Inject a plain {@code Session}; like Quarkus's own, it is bound to the current
 * transaction. The inactive unit is looked up never, so its datasource never connects.
 */
@ApplicationScoped
public class RegistrySession {
  @Produces
  @ApplicationScoped
  Session registry(
      @ConfigProperty(name = RegistryDatabase.URL) Optional<String> url,
      @Any Instance<Session> units) {
    String unit = RegistryDatabase.unitFor(url.orElse(null));
    return units.select(new PersistenceUnit.PersistenceUnitLiteral(unit)).get();
  }
}
