package dev.prefixgate.messaging;

import dev.prefixgate.PrefixgateConfig;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;

/**
 * The connection settings every Kafka client of the gateway shares: addresses, transport and login.
 * Each client adds its own tuning on top. Nothing here is logged.
 */
public final class KafkaClients {
  private static final Set<String> PROTOCOLS =
      Set.of("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL");
  private static final Set<String> MECHANISMS = Set.of("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN");

  private KafkaClients() {}

  /**
   * @throws IllegalStateException when the settings cannot make a working login (an unknown
   *     protocol or mechanism, SASL without a username or password); the message names the setting,
   *     never the secret
   */
  public static Properties connection(PrefixgateConfig.Kafka k) {
    Properties p = new Properties();
    p.put("bootstrap.servers", k.bootstrapServers());
    String protocol = k.securityProtocol().strip().toUpperCase();
    if (!PROTOCOLS.contains(protocol)) {
      throw new IllegalStateException(
          "prefixgate.kafka.security-protocol '"
              + k.securityProtocol()
              + "' is not one of "
              + PROTOCOLS);
    }
    p.put("security.protocol", protocol);
    if (protocol.startsWith("SASL_")) {
      String mechanism = k.saslMechanism().strip().toUpperCase();
      if (!MECHANISMS.contains(mechanism)) {
        throw new IllegalStateException(
            "prefixgate.kafka.sasl-mechanism '"
                + k.saslMechanism()
                + "' is not one of "
                + MECHANISMS);
      }
      String user = required(k.username(), "prefixgate.kafka.username", protocol);
      String password =
          required(
              k.password(), "prefixgate.kafka.password (env PREFIXGATE_KAFKA_PASSWORD)", protocol);
      String module =
          mechanism.equals("PLAIN")
              ? "org.apache.kafka.common.security.plain.PlainLoginModule"
              : "org.apache.kafka.common.security.scram.ScramLoginModule";
      p.put("sasl.mechanism", mechanism);
      p.put(
          "sasl.jaas.config",
          module
              + " required username=\""
              + jaas(user)
              + "\" password=\""
              + jaas(password)
              + "\";");
    }
    if (protocol.endsWith("SSL")) {
      k.sslTruststoreLocation().ifPresent(v -> p.put("ssl.truststore.location", v));
      k.sslTruststorePassword().ifPresent(v -> p.put("ssl.truststore.password", v));
      k.sslKeystoreLocation().ifPresent(v -> p.put("ssl.keystore.location", v));
      k.sslKeystorePassword().ifPresent(v -> p.put("ssl.keystore.password", v));
    }
    return p;
  }

  /** The principal this gateway logs in as, for log lines and event provenance. */
  public static String principal(PrefixgateConfig.Kafka k) {
    return k.username().filter(u -> !u.isBlank()).orElse("anonymous");
  }

  private static String required(Optional<String> value, String name, String protocol) {
    return value
        .filter(v -> !v.isBlank())
        .orElseThrow(() -> new IllegalStateException(name + " must be set for " + protocol));
  }

  /** JAAS quotes: a password with a quote or backslash must not end the value early. */
  private static String jaas(String v) {
    return v.replace("\\", "\\\\").replace("\"", "\\\"");
  }
}
