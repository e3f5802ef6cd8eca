package dev.prefixgate.trainer;

import java.io.PrintStream;

/**
 * Entry point of the retraining worker: {@code java -jar prefixgate-trainer-worker.jar [--name
 * value]}. Settings are listed in {@link WorkerConfig}; every one can also come from {@code
 * PREFIXGATE_*}.
 */
public final class WorkerMain {

  static final String USAGE =
      """
      usage: prefixgate-trainer-worker [--name value ...]

      Consumes retrain requests from Kafka, trains a PEFT prefix adapter with trainer/python,
      publishes the adapter event and training-status events. Settings (or PREFIXGATE_<NAME>):
        --kafka-bootstrap 127.0.0.1:9092   --group-id prefixgate-trainers
        --retrain-topic prefixgate.retrain-requests   --status-topic prefixgate.training-status
        --adapters-topic prefixgate.adapters
        --python trainer/python/.venv/bin/python   --trainer-dir trainer/python
        --model-dir trainer/fixtures/tiny-bloom   --gateway-url http://127.0.0.1:8080
        --work-dir /tmp   --timeout-seconds 1800   --max-dataset-bytes 67108864
        --max-attempts 3   --dead-letters-topic prefixgate.retrain-dead-letters
        --kafka-security-protocol SASL_SSL   --kafka-sasl-mechanism SCRAM-SHA-512
        --kafka-username NAME   --kafka-truststore FILE
      The gateway's trainer key comes from PREFIXGATE_TRAINER_KEY or --trainer-key-file FILE,
      the Kafka password from PREFIXGATE_KAFKA_PASSWORD or --kafka-password-file FILE:
      never from the command line.
      """;

  private WorkerMain() {}

  public static void main(String[] args) throws Exception {
    if (args.length == 1 && (args[0].equals("--help") || args[0].equals("-h"))) {
      System.out.print(USAGE);
      return;
    }
    WorkerConfig cfg;
    try {
      cfg = WorkerConfig.from(args, System.getenv());
    } catch (IllegalArgumentException e) {
      System.err.println(e.getMessage());
      System.err.print(USAGE);
      System.exit(2);
      return;
    }
    try (Worker worker = new Worker(cfg, System.out)) {
      Runtime.getRuntime().addShutdownHook(new Thread(worker::stop));
      worker.run();
    }
  }

  /** Exit code of the argument check alone; kept separate so tests need not start a worker. */
  static int check(String[] args, PrintStream err) {
    try {
      WorkerConfig.from(args, java.util.Map.of());
      return 0;
    } catch (IllegalArgumentException e) {
      err.println(e.getMessage());
      return 2;
    }
  }
}
