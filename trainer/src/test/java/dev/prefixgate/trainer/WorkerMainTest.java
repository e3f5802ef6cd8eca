package dev.prefixgate.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class WorkerMainTest {

  private final ByteArrayOutputStream out = new ByteArrayOutputStream();
  private final ByteArrayOutputStream err = new ByteArrayOutputStream();

  private int run(String... args) {
    return WorkerMain.run(
        args,
        new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
  }

  @Test
  void helpPrintsUsageToStdoutAndSucceeds() {
    assertEquals(0, run("--help"));
    assertEquals(WorkerMain.USAGE, out.toString(StandardCharsets.UTF_8));
    assertEquals("", err.toString(StandardCharsets.UTF_8));
  }

  @Test
  void unknownArgumentsPrintUsageToStderrAndFail() {
    assertEquals(2, run("--bogus"));
    assertEquals("", out.toString(StandardCharsets.UTF_8));
    assertEquals(WorkerMain.USAGE, err.toString(StandardCharsets.UTF_8));
  }
}
