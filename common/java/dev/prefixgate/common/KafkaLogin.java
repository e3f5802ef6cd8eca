package dev.prefixgate.common;

import java.util.Locale;
import java.util.Properties;
import java.util.Set;

/**
 * How a Prefixgate process logs in to Kafka, written once for the gateway and the trainer worker
 * (this source directory is compiled into both): the transport protocols and SASL mechanisms we
 * support and the JAAS line for a username and password. Nothing here is logged, and no message
 * contains a secret.
 */
public final class KafkaLogin {
  public static final Set<String> PROTOCOLS =
      Set.of("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL");
  public static final Set<String> MECHANISMS = Set.of("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN");

  private KafkaLogin() {}

  /**
   * The protocol in Kafka's spelling.
   *
   * @param setting the setting's name, for the message
   * @throws IllegalArgumentException when it is not one of {@link #PROTOCOLS}
   */
  public static String protocol(String value, String setting) {
    String p = value == null ? "" : value.strip().toUpperCase(Locale.ROOT);
    if (!PROTOCOLS.contains(p)) {
      throw new IllegalArgumentException(
          setting + " must be one of " + PROTOCOLS + ", got '" + value + "'");
    }
    return p;
  }

  /**
   * The SASL mechanism in Kafka's spelling.
   *
   * @param setting the setting's name, for the message
   * @throws IllegalArgumentException when it is not one of {@link #MECHANISMS}
   */
  public static String mechanism(String value, String setting) {
    String m = value == null ? "" : value.strip().toUpperCase(Locale.ROOT);
    if (!MECHANISMS.contains(m)) {
      throw new IllegalArgumentException(
          setting + " must be one of " + MECHANISMS + ", got '" + value + "'");
    }
    return m;
  }

  /**
   * Puts {@code sasl.mechanism} and {@code sasl.jaas.config} for a username/password login with
   * {@code mechanism} (already checked by {@link #mechanism}).
   */
  public static void putSasl(Properties p, String mechanism, String username, String password) {
    String module =
        mechanism.equals("PLAIN")
            ? "org.apache.kafka.common.security.plain.PlainLoginModule"
            : "org.apache.kafka.common.security.scram.ScramLoginModule";
    p.put("sasl.mechanism", mechanism);
    p.put(
        "sasl.jaas.config",
        module
            + " required username=\""
            + quote(username)
            + "\" password=\""
            + quote(password)
            + "\";");
  }

  /** JAAS quotes: a password with a quote or backslash must not end the value early. */
  static String quote(String v) {
    return v.replace("\\", "\\\\").replace("\"", "\\\"");
  }
}
