package dev.prefixgate.trainer;

import java.io.PrintStream;

/** Entry point of the retraining worker. The Kafka consumer loop is not written yet. */
public final class WorkerMain {

  static final String USAGE =
      """
      usage: prefixgate-trainer-worker [--help]

      Consumes retraining jobs from Kafka and hands them to the Python trainer (not implemented yet).
      """;

  private WorkerMain() {}

  public static void main(String[] args) {
    System.exit(run(args, System.out, System.err));
  }

  /** Returns the process exit code; separate from {@link #main} so tests need not exit the JVM. */
  static int run(String[] args, PrintStream out, PrintStream err) {
    if (args.length == 1 && (args[0].equals("--help") || args[0].equals("-h"))) {
      out.print(USAGE);
      return 0;
    }
    err.print(USAGE);
    return 2;
  }
}
