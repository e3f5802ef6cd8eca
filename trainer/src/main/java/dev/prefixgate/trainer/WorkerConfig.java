package dev.prefixgate.trainer;

import dev.prefixgate.common.KafkaLogin;
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
 * @param kafkaSecurityProtocol {@code SASL_SSL} (default), {@code SASL_PLAINTEXT} (the local
 *     broker), {@code SSL} or {@code PLAINTEXT}
 * @param kafkaSaslMechanism {@code SCRAM-SHA-512} (default), {@code SCRAM-SHA-256} or {@code PLAIN}
 * @param kafkaUsername the worker's Kafka principal (the broker's ACLs let it publish adapter
 *     events); also written into each event as its producer
 * @param kafkaPassword from {@code PREFIXGATE_KAFKA_PASSWORD} or {@code --kafka-password-file},
 *     never from the command line
 * @param kafkaTruststore optional trust store for the broker's certificate (TLS)
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
    String deadLettersTopic,
    String kafkaSecurityProtocol,
    String kafkaSaslMechanism,
    String kafkaUsername,
    String kafkaPassword,
    String kafkaTruststore) {

  /** Connection settings every Kafka client of the worker shares (addresses, transport, login). */
  java.util.Properties kafka() {
    java.util.Properties p = new java.util.Properties();
    p.put("bootstrap.servers", bootstrap);
    p.put("security.protocol", kafkaSecurityProtocol);
    if (kafkaSecurityProtocol.startsWith("SASL_")) {
      KafkaLogin.putSasl(p, kafkaSaslMechanism, kafkaUsername, kafkaPassword);
    }
    if (kafkaSecurityProtocol.endsWith("SSL") && !kafkaTruststore.isEmpty()) {
      p.put("ssl.truststore.location", kafkaTruststore);
    }
    return p;
  }

  /** The principal named as the producer of the events this worker publishes. */
  String producer() {
    return kafkaUsername.isEmpty() ? "prefixgate-trainer-worker" : kafkaUsername;
  }

  @Override
  public String toString() {
    // A record's toString would print both secrets.
    return "WorkerConfig[" + bootstrap + " as " + producer() + "]";
  }

  static WorkerConfig from(String[] args, Map<String, String> env) {
    Map<String, String> a = new HashMap<>();
    for (int i = 0; i < args.length; i++) {
      if (!args[i].startsWith("--") || i + 1 >= args.length) {
        throw new IllegalArgumentException("expected --name value, got '" + args[i] + "'");
      }
      a.put(args[i].substring(2), args[++i]);
    }
    if (a.containsKey("kafka-password")) {
      throw new IllegalArgumentException(
          "credentials are not taken from the command line (ps shows it): set"
              + " PREFIXGATE_KAFKA_PASSWORD or --kafka-password-file");
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
    String kafkaPassword = env.getOrDefault("PREFIXGATE_KAFKA_PASSWORD", "");
    if (a.containsKey("kafka-password-file")) {
      try {
        kafkaPassword =
            java.nio.file.Files.readString(Path.of(a.get("kafka-password-file"))).strip();
      } catch (java.io.IOException e) {
        throw new IllegalArgumentException(
            "cannot read --kafka-password-file "
                + a.get("kafka-password-file")
                + ": "
                + e.getMessage());
      }
    }
    String protocol =
        KafkaLogin.protocol(
            get.apply("kafka-security-protocol", "SASL_SSL"), "kafka-security-protocol");
    String mechanism =
        KafkaLogin.mechanism(
            get.apply("kafka-sasl-mechanism", "SCRAM-SHA-512"), "kafka-sasl-mechanism");
    String kafkaUser = get.apply("kafka-username", "");
    if (protocol.startsWith("SASL_") && (kafkaUser.isEmpty() || kafkaPassword.isEmpty())) {
      throw new IllegalArgumentException(
          protocol
              + " needs --kafka-username (or PREFIXGATE_KAFKA_USERNAME) and"
              + " PREFIXGATE_KAFKA_PASSWORD (or --kafka-password-file)");
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
        get.apply("dead-letters-topic", "prefixgate.retrain-dead-letters"),
        protocol,
        mechanism,
        kafkaUser,
        kafkaPassword,
        get.apply("kafka-truststore", ""));
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
