package dev.prefixgate.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Settings resolution; the worker's Kafka and training behaviour is tested end to end in pytest.
 */
class WorkerMainTest {
  /** A SASL login, which the default protocol (SASL_SSL) needs. */
  static final Map<String, String> LOGIN =
      Map.of("PREFIXGATE_KAFKA_USERNAME", "trainer", "PREFIXGATE_KAFKA_PASSWORD", "s3cret\"x");

  static Map<String, String> with(String name, String value) {
    Map<String, String> env = new java.util.HashMap<>(LOGIN);
    env.put(name, value);
    return env;
  }

  @Test
  void argumentsOverrideEnvironmentWhichOverridesDefaults() {
    WorkerConfig c =
        WorkerConfig.from(
            new String[] {"--model-dir", "/models/x", "--timeout-seconds", "60"},
            Map.of(
                "PREFIXGATE_KAFKA_BOOTSTRAP",
                "broker:9092",
                "PREFIXGATE_MODEL_DIR",
                "/ignored",
                "PREFIXGATE_KAFKA_USERNAME",
                "trainer",
                "PREFIXGATE_KAFKA_PASSWORD",
                "pw"));
    assertEquals("broker:9092", c.bootstrap());
    assertEquals(Path.of("/models/x"), c.modelDir());
    assertTrue(
        c.python().isAbsolute(),
        "the job runs in trainer/python: a relative interpreter path would break");
    assertEquals(60, c.timeoutSeconds());
    assertEquals("prefixgate.retrain-requests", c.retrainTopic());
    assertEquals("prefixgate-trainers", c.groupId());
  }

  @Test
  void badArgumentsAreRefusedWithAMessage() {
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    assertEquals(
        2,
        WorkerMain.check(
            new String[] {"--timeout-seconds", "soon"},
            new PrintStream(err, true, StandardCharsets.UTF_8)));
    assertTrue(err.toString(StandardCharsets.UTF_8).contains("timeout-seconds must be a number"));
    assertThrows(
        IllegalArgumentException.class, () -> WorkerConfig.from(new String[] {"stray"}, Map.of()));
    assertThrows(
        IllegalArgumentException.class,
        () -> WorkerConfig.from(new String[] {"--timeout-seconds", "0"}, LOGIN));
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> WorkerConfig.from(new String[] {"--kafka-security-protocol", "TLS"}, LOGIN));
    assertTrue(e.getMessage().contains("TLS"), e.getMessage());
  }

  /** The default transport is SASL over TLS; a SASL protocol without a login fails at start. */
  @Test
  void kafkaLoginIsRequiredAndItsPasswordNeverPrinted() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class, () -> WorkerConfig.from(new String[0], Map.of()));
    assertTrue(e.getMessage().contains("PREFIXGATE_KAFKA_PASSWORD"), e.getMessage());
    WorkerConfig c = WorkerConfig.from(new String[0], LOGIN);
    assertEquals("SASL_SSL", c.kafka().get("security.protocol"));
    assertEquals("SCRAM-SHA-512", c.kafka().get("sasl.mechanism"));
    // The quote in the password is escaped: it cannot end the JAAS value early.
    assertEquals(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"trainer\""
            + " password=\"s3cret\\\"x\";",
        c.kafka().get("sasl.jaas.config"));
    assertEquals("trainer", c.producer());
    assertFalse(c.toString().contains("s3cret"), c.toString());
    WorkerConfig plain =
        WorkerConfig.from(new String[] {"--kafka-security-protocol", "plaintext"}, Map.of());
    assertEquals("PLAINTEXT", plain.kafka().get("security.protocol"));
    assertNull(plain.kafka().get("sasl.jaas.config"));
  }

  /** A credential on the command line is visible to every user of the machine through ps. */
  @Test
  void credentialsComeFromTheEnvironmentOrAFileNeverFromArguments() throws Exception {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> WorkerConfig.from(new String[] {"--admin-key", "pg-admin-demo"}, LOGIN));
    assertTrue(e.getMessage().contains("PREFIXGATE_TRAINER_KEY"), e.getMessage());
    assertThrows(
        IllegalArgumentException.class,
        () -> WorkerConfig.from(new String[] {"--trainer-key", "k"}, LOGIN));
    e =
        assertThrows(
            IllegalArgumentException.class,
            () -> WorkerConfig.from(new String[] {"--kafka-password", "pw"}, LOGIN));
    assertTrue(e.getMessage().contains("PREFIXGATE_KAFKA_PASSWORD"), e.getMessage());
    assertEquals(
        "from-env",
        WorkerConfig.from(new String[0], with("PREFIXGATE_TRAINER_KEY", "from-env")).trainerKey());
    Path file = java.nio.file.Files.createTempFile("trainer-key", ".txt");
    java.nio.file.Files.writeString(file, "from-file\n");
    assertEquals(
        "from-file",
        WorkerConfig.from(new String[] {"--trainer-key-file", file.toString()}, LOGIN)
            .trainerKey());
    assertEquals(3, WorkerConfig.from(new String[0], LOGIN).maxAttempts());
    java.nio.file.Files.writeString(file, "pw-from-file\n");
    WorkerConfig c =
        WorkerConfig.from(
            new String[] {"--kafka-password-file", file.toString(), "--kafka-username", "t"},
            Map.of());
    assertTrue(c.kafka().get("sasl.jaas.config").toString().contains("\"pw-from-file\""));
    java.nio.file.Files.delete(file);
  }
}
