package dev.prefixgate.trainer;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * Worker settings: {@code --name value} arguments override {@code PREFIXGATE_*} environment
 * variables, which override the defaults (the repository layout and a local broker).
 *
 * @param bootstrap Kafka brokers
 * @param retrainTopic retrain requests (consumer group {@code groupId}, scales by partitions)
 * @param statusTopic training-status events
 * @param adaptersTopic where the trained adapter is published
 * @param python the interpreter with the trainer's dependencies
 * @param trainerDir the {@code trainer/python} folder (the job's working directory)
 * @param modelDir the base model the gateway serves (HF weights + tokenizer)
 * @param gatewayUrl the gateway whose {@code /trainer/...} route serves data sets; the only address
 *     that ever receives the trainer key (a request's own {@code dataset.url} is never fetched)
 * @param trainerKey the gateway's {@code prefixgate.trainer.key}: from {@code
 *     PREFIXGATE_TRAINER_KEY} or a file ({@code --trainer-key-file}), never from the command line,
 *     where {@code ps} shows it
 * @param timeoutSeconds a job running longer is killed and failed
 * @param maxDatasetBytes a data set download larger than this fails the job
 * @param maxAttempts a request that started this many times without finishing (it killed its
 *     worker, say) goes to {@code deadLettersTopic} instead of training again
 */
record WorkerConfig(
    String bootstrap,
    String groupId,
    String retrainTopic,
    String statusTopic,
    String adaptersTopic,
    Path python,
    Path trainerDir,
    Path modelDir,
    String gatewayUrl,
    String trainerKey,
    Path workDir,
    long timeoutSeconds,
    long maxDatasetBytes,
    int maxAttempts,
    String deadLettersTopic) {

  static WorkerConfig from(String[] args, Map<String, String> env) {
    Map<String, String> a = new HashMap<>();
    for (int i = 0; i < args.length; i++) {
      if (!args[i].startsWith("--") || i + 1 >= args.length) {
        throw new IllegalArgumentException("expected --name value, got '" + args[i] + "'");
      }
      a.put(args[i].substring(2), args[++i]);
    }
    if (a.containsKey("admin-key") || a.containsKey("trainer-key")) {
      throw new IllegalArgumentException(
          "credentials are not taken from the command line (ps shows it): set"
              + " PREFIXGATE_TRAINER_KEY or --trainer-key-file; the worker never needs the admin"
              + " key");
    }
    java.util.function.BiFunction<String, String, String> get =
        (name, dflt) -> {
          String envName = "PREFIXGATE_" + name.toUpperCase().replace('-', '_');
          return a.getOrDefault(name, env.getOrDefault(envName, dflt));
        };
    long timeout = positive(get.apply("timeout-seconds", "1800"), "timeout-seconds");
    long maxDataset = positive(get.apply("max-dataset-bytes", "67108864"), "max-dataset-bytes");
    long attempts = positive(get.apply("max-attempts", "3"), "max-attempts");
    String key = env.getOrDefault("PREFIXGATE_TRAINER_KEY", "");
    if (a.containsKey("trainer-key-file")) {
      try {
        key = java.nio.file.Files.readString(Path.of(a.get("trainer-key-file"))).strip();
      } catch (java.io.IOException e) {
        throw new IllegalArgumentException(
            "cannot read --trainer-key-file " + a.get("trainer-key-file") + ": " + e.getMessage());
      }
    }
    String gateway = get.apply("gateway-url", "http://127.0.0.1:8080");
    if (!gateway.startsWith("http://") && !gateway.startsWith("https://")) {
      throw new IllegalArgumentException("gateway-url must be an http(s) URL, got " + gateway);
    }
    return new WorkerConfig(
        get.apply("kafka-bootstrap", "127.0.0.1:9092"),
        get.apply("group-id", "prefixgate-trainers"),
        get.apply("retrain-topic", "prefixgate.retrain-requests"),
        get.apply("status-topic", "prefixgate.training-status"),
        get.apply("adapters-topic", "prefixgate.adapters"),
        absolute(get.apply("python", "trainer/python/.venv/bin/python")),
        Path.of(get.apply("trainer-dir", "trainer/python")).toAbsolutePath(),
        Path.of(get.apply("model-dir", "trainer/fixtures/tiny-bloom")).toAbsolutePath(),
        gateway.replaceAll("/+$", ""),
        key,
        Path.of(get.apply("work-dir", System.getProperty("java.io.tmpdir"))),
        timeout,
        maxDataset,
        (int) Math.min(attempts, 1000),
        get.apply("dead-letters-topic", "prefixgate.retrain-dead-letters"));
  }

  private static long positive(String value, String name) {
    long v;
    try {
      v = Long.parseLong(value);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(name + " must be a number, got " + value);
    }
    if (v < 1) throw new IllegalArgumentException(name + " must be >= 1, got " + v);
    return v;
  }

  /**
   * A path with a folder is made absolute (the job runs in another directory); a bare name is
   * looked up on PATH.
   */
  private static Path absolute(String command) {
    Path p = Path.of(command);
    return p.getParent() == null ? p : p.toAbsolutePath();
  }
}
