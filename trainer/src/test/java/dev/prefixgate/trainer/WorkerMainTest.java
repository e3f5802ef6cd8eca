package dev.prefixgate.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
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

  @Test
  void argumentsOverrideEnvironmentWhichOverridesDefaults() {
    WorkerConfig c =
        WorkerConfig.from(
            new String[] {"--model-dir", "/models/x", "--timeout-seconds", "60"},
            Map.of(
                "PREFIXGATE_KAFKA_BOOTSTRAP", "broker:9092", "PREFIXGATE_MODEL_DIR", "/ignored"));
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
        () -> WorkerConfig.from(new String[] {"--timeout-seconds", "0"}, Map.of()));
  }

  /** A credential on the command line is visible to every user of the machine through ps. */
  @Test
  void credentialsComeFromTheEnvironmentOrAFileNeverFromArguments() throws Exception {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () -> WorkerConfig.from(new String[] {"--admin-key", "pg-admin-demo"}, Map.of()));
    assertTrue(e.getMessage().contains("PREFIXGATE_TRAINER_KEY"), e.getMessage());
    assertThrows(
        IllegalArgumentException.class,
        () -> WorkerConfig.from(new String[] {"--trainer-key", "k"}, Map.of()));
    assertEquals(
        "from-env",
        WorkerConfig.from(new String[0], Map.of("PREFIXGATE_TRAINER_KEY", "from-env"))
            .trainerKey());
    Path file = java.nio.file.Files.createTempFile("trainer-key", ".txt");
    java.nio.file.Files.writeString(file, "from-file\n");
    assertEquals(
        "from-file",
        WorkerConfig.from(new String[] {"--trainer-key-file", file.toString()}, Map.of())
            .trainerKey());
    java.nio.file.Files.delete(file);
    assertEquals(3, WorkerConfig.from(new String[0], Map.of()).maxAttempts());
  }
}
