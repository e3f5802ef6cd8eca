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
 * @param adminKey sent when fetching a data set from the gateway's admin API
 * @param timeoutSeconds a job running longer is killed and failed
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
    String adminKey,
    Path workDir,
    long timeoutSeconds) {

  static WorkerConfig from(String[] args, Map<String, String> env) {
    Map<String, String> a = new HashMap<>();
    for (int i = 0; i < args.length; i++) {
      if (!args[i].startsWith("--") || i + 1 >= args.length) {
        throw new IllegalArgumentException("expected --name value, got '" + args[i] + "'");
      }
      a.put(args[i].substring(2), args[++i]);
    }
    java.util.function.BiFunction<String, String, String> get =
        (name, dflt) -> {
          String envName = "PREFIXGATE_" + name.toUpperCase().replace('-', '_');
          return a.getOrDefault(name, env.getOrDefault(envName, dflt));
        };
    long timeout;
    try {
      timeout = Long.parseLong(get.apply("timeout-seconds", "1800"));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("timeout-seconds must be a number");
    }
    if (timeout < 1)
      throw new IllegalArgumentException("timeout-seconds must be >= 1, got " + timeout);
    return new WorkerConfig(
        get.apply("kafka-bootstrap", "127.0.0.1:9092"),
        get.apply("group-id", "prefixgate-trainers"),
        get.apply("retrain-topic", "prefixgate.retrain-requests"),
        get.apply("status-topic", "prefixgate.training-status"),
        get.apply("adapters-topic", "prefixgate.adapters"),
        absolute(get.apply("python", "trainer/python/.venv/bin/python")),
        Path.of(get.apply("trainer-dir", "trainer/python")).toAbsolutePath(),
        Path.of(get.apply("model-dir", "trainer/fixtures/tiny-bloom")).toAbsolutePath(),
        get.apply("admin-key", ""),
        Path.of(get.apply("work-dir", System.getProperty("java.io.tmpdir"))),
        timeout);
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
