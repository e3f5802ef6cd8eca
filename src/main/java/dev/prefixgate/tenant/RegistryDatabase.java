package dev.prefixgate.tenant;

import io.smallrye.config.ConfigSourceContext;
import io.smallrye.config.ConfigSourceFactory;
import io.smallrye.config.ConfigValue;
import io.smallrye.config.PropertiesConfigSource;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import org.eclipse.microprofile.config.spi.ConfigSource;

/**
 * Chooses the registry's database when the gateway starts, so that one packaged jar serves both: a
 * {@code jdbc:postgresql:} URL in {@code quarkus.datasource.jdbc.url} ({@code
 * QUARKUS_DATASOURCE_JDBC_URL}) selects PostgreSQL, anything else (the default H2 file, or another
 * {@code jdbc:h2:} URL) the embedded H2.
 *
 * <p>Quarkus fixes a datasource's {@code db-kind} (its driver and Hibernate's dialect) at build
 * time, so the build defines two datasources with one persistence unit each, {@value #H2} and
 * {@value #POSTGRESQL}, over the same entities. This source copies the URL and credentials given
 * under {@code quarkus.datasource.*} to the chosen one and deactivates the other ({@code
 * quarkus.datasource."name".active=false}) with its persistence unit and its Flyway migration.
 * {@link RegistrySession} hands the chosen unit's session to the registry code.
 *
 * <p>Registered through {@code META-INF/services/io.smallrye.config.ConfigSourceFactory}; it runs
 * after the ordinary sources (environment, system properties, {@code application.properties} with
 * profiles), and a setting given explicitly per datasource wins over what it derives.
 */
public class RegistryDatabase implements ConfigSourceFactory {
  /** The embedded database's datasource and persistence unit. */
  public static final String H2 = "h2";

  /** The production database's datasource and persistence unit. */
  public static final String POSTGRESQL = "postgresql";

  static final String URL = "quarkus.datasource.jdbc.url";
  static final String USERNAME = "quarkus.datasource.username";
  static final String PASSWORD = "quarkus.datasource.password";

  /** H2's own default user, which the embedded file databases were created with. */
  static final String H2_USER = "sa";

  /** Below application.properties (250): an explicit per-datasource setting wins. */
  static final int ORDINAL = 200;

  /** The datasource and persistence unit that a JDBC URL selects. */
  public static String unitFor(String url) {
    return url != null && url.startsWith("jdbc:postgresql:") ? POSTGRESQL : H2;
  }

  @Override
  public Iterable<ConfigSource> getConfigSources(ConfigSourceContext context) {
    String url = value(context, URL);
    String user = value(context, USERNAME);
    String password = value(context, PASSWORD);
    String unit = unitFor(url);
    String other = unit.equals(H2) ? POSTGRESQL : H2;
    Map<String, String> derived = new HashMap<>();
    String prefix = "quarkus.datasource.\"" + unit + "\".";
    if (url != null) derived.put(prefix + "jdbc.url", url);
    if (user != null) derived.put(prefix + "username", user);
    else if (unit.equals(H2)) derived.put(prefix + "username", H2_USER);
    if (password != null) derived.put(prefix + "password", password);
    // The datasource, its persistence unit and its migration: without the unit's flag, Quarkus
    // 3.33 fails start-up (the unit looks for its inactive datasource). Both sides are written:
    // Quarkus also runs this factory while building and records what it returned then (with the
    // build's URL) as run-time defaults, which an unwritten flag would fall back to.
    for (String extension : List.of("datasource", "hibernate-orm", "flyway")) {
      derived.put("quarkus." + extension + ".\"" + unit + "\".active", "true");
      derived.put("quarkus." + extension + ".\"" + other + "\".active", "false");
    }
    return List.of(new PropertiesConfigSource(derived, "prefixgate-registry-database", ORDINAL));
  }

  @Override
  public OptionalInt getPriority() {
    return OptionalInt.of(ORDINAL);
  }

  private static String value(ConfigSourceContext context, String name) {
    ConfigValue v = context.getValue(name);
    return v == null || v.getValue() == null || v.getValue().isBlank() ? null : v.getValue();
  }
}
