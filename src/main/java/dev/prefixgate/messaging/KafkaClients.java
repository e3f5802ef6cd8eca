package dev.prefixgate.messaging;

import dev.prefixgate.PrefixgateConfig;
import dev.prefixgate.common.KafkaLogin;
import java.util.Optional;
import java.util.Properties;

/**
 * The connection settings every Kafka client of the gateway shares: addresses, transport and login.
 * Each client adds its own tuning on top. Nothing here is logged.
 */
public final class KafkaClients {
  private KafkaClients() {}

  /**
   * @throws IllegalStateException when the settings cannot make a working login (an unknown
   *     protocol or mechanism, SASL without a username or password); the message names the setting,
   *     never the secret
   */
  public static Properties connection(PrefixgateConfig.Kafka k) {
    Properties p = new Properties();
    p.put("bootstrap.servers", k.bootstrapServers());
    String protocol;
    String mechanism;
    try {
      protocol = KafkaLogin.protocol(k.securityProtocol(), "prefixgate.kafka.security-protocol");
      mechanism =
          protocol.startsWith("SASL_")
              ? KafkaLogin.mechanism(k.saslMechanism(), "prefixgate.kafka.sasl-mechanism")
              : null;
    } catch (IllegalArgumentException e) {
      throw new IllegalStateException(e.getMessage());
    }
    p.put("security.protocol", protocol);
    if (mechanism != null) {
      String user = required(k.username(), "prefixgate.kafka.username", protocol);
      String password =
          required(
              k.password(), "prefixgate.kafka.password (env PREFIXGATE_KAFKA_PASSWORD)", protocol);
      KafkaLogin.putSasl(p, mechanism, user, password);
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
}
