package dev.prefixgate.retrain;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.ValidationMessage;
import dev.prefixgate.PrefixgateConfig;
import dev.prefixgate.adapter.AdapterRegistry;
import dev.prefixgate.messaging.EventSchemas;
import dev.prefixgate.messaging.KafkaClients;
import dev.prefixgate.messaging.KafkaLoop;
import io.quarkus.runtime.StartupEvent;
import jakarta.annotation.PreDestroy;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import jakarta.transaction.Transactional;
import java.io.IOException;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.logging.Logger;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.hibernate.Session;

/**
 * Publishes retrain requests and follows training-status events into {@link TrainingJob} rows. Both
 * payloads are checked against the JSON Schemas in {@code deploy/schemas}.
 */
@ApplicationScoped
public class RetrainRequests {
  private static final Logger LOG = Logger.getLogger(RetrainRequests.class.getName());
  private static final ObjectMapper JSON = new ObjectMapper();

  /** The broker did not take the request in time; the API answers 503. */
  public static final class Unavailable extends RuntimeException {
    Unavailable(String message, Throwable cause) {
      super(message, cause);
    }
  }

  @Inject PrefixgateConfig config;
  @Inject AdapterRegistry registry;
  @Inject Session db;

  private KafkaProducer<String, String> producer;
  private KafkaConsumer<String, String> statusConsumer;
  private KafkaLoop<String, String> loop;
  private volatile boolean running;
  private JsonSchema requestSchema;
  private JsonSchema statusSchema;

  void start(@Observes StartupEvent ignored) throws IOException {
    requestSchema = EventSchemas.load("retrain-request");
    statusSchema = EventSchemas.load("training-status");
    PrefixgateConfig.Kafka k = config.kafka();
    if (!k.enabled()) return;
    Properties p = KafkaClients.connection(k);
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    // A broker that is down must turn into a quick 503, not a hanging admin call.
    p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 5000);
    p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 4000);
    p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 8000);
    producer = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    Properties c = KafkaClients.connection(k);
    // One group for all replicas: they share the database, so one of them applies each status.
    c.put(ConsumerConfig.GROUP_ID_CONFIG, "prefixgate-gateway-status");
    c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    statusConsumer = new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer());
    statusConsumer.subscribe(List.of(k.statusTopic()));
    running = true;
    loop =
        KafkaLoop.start(
            "prefixgate-training-status",
            statusConsumer,
            r -> applyStatus(JSON.readTree(r.value())),
            new KafkaLoop.Hooks() {
              @Override
              public void afterPoll() {
                statusConsumer.commitAsync();
              }
            });
  }

  /**
   * Creates the job and publishes its request. The job row is written only after the broker
   * acknowledged the request, so an unavailable broker leaves nothing behind.
   *
   * @throws Unavailable when Kafka is disabled or the broker does not answer in time
   * @throws IllegalArgumentException when the request does not match the schema
   */
  public TrainingJob submit(
      Dataset dataset,
      String adapter,
      JsonNode hyperParameters,
      Activation activation,
      String datasetUrl) {
    if (producer == null) {
      throw new Unavailable(
          "retraining needs Kafka: set prefixgate.kafka.enabled=true and start a broker", null);
    }
    String requestId = UUID.randomUUID().toString();
    ObjectNode req = JSON.createObjectNode();
    req.put("requestId", requestId).put("tenant", dataset.tenantId).put("adapter", adapter);
    req.putObject("dataset")
        .put("id", dataset.id)
        .put("sha256", dataset.digest)
        .put("url", datasetUrl);
    if (hyperParameters != null && !hyperParameters.isNull())
      req.set("hyperParameters", hyperParameters);
    req.set("activation", activationOf(dataset.tenantId, adapter, activation));
    Set<ValidationMessage> errors = requestSchema.validate(req);
    if (!errors.isEmpty()) {
      throw new IllegalArgumentException(
          errors.stream()
              .map(ValidationMessage::getMessage)
              .sorted()
              .collect(Collectors.joining("; ")));
    }
    try {
      producer
          .send(
              new ProducerRecord<>(config.kafka().retrainTopic(), dataset.tenantId, req.toString()))
          .get(10, TimeUnit.SECONDS);
    } catch (Exception e) {
      throw new Unavailable(
          "the Kafka broker at "
              + config.kafka().bootstrapServers()
              + " did not accept the retrain request: "
              + e.getMessage(),
          e);
    }
    return createJob(requestId, dataset, adapter, hyperParameters);
  }

  /**
   * How a retrained version may go live (see {@code prefixgate_trainer.job}).
   *
   * @param policy gate (default), if-better, always or never
   * @param minImprovement relative held-out loss improvement required, or null for the default
   * @param maxEvalLoss held-out loss (nats per answer token) not to exceed, or null for the default
   */
  public record Activation(String policy, Double minImprovement, Double maxEvalLoss) {
    public static final List<String> POLICIES = List.of("gate", "if-better", "always", "never");

    public Activation {
      if (policy == null) policy = "gate";
      if (!POLICIES.contains(policy)) {
        throw new IllegalArgumentException(
            "activate '" + policy + "' is not one of " + String.join(", ", POLICIES));
      }
      if (minImprovement != null && !(minImprovement >= 0 && minImprovement < 1)) {
        throw new IllegalArgumentException(
            "minImprovement " + minImprovement + " is not in [0, 1)");
      }
      if (maxEvalLoss != null && !(maxEvalLoss > 0 && maxEvalLoss < 1e6)) {
        throw new IllegalArgumentException("maxEvalLoss " + maxEvalLoss + " is not in (0, 1e6)");
      }
    }
  }

  /** The request's activation block; if-better carries the active version's held-out score. */
  private ObjectNode activationOf(String tenant, String adapter, Activation a) {
    ObjectNode n = JSON.createObjectNode().put("policy", a.policy());
    if (a.minImprovement() != null) n.put("minImprovement", a.minImprovement());
    if (a.maxEvalLoss() != null) n.put("maxEvalLoss", a.maxEvalLoss());
    if (a.policy().equals("if-better")) {
      registry
          .active(tenant, adapter)
          .ifPresent(
              v -> {
                JsonNode m = parse(v.metrics);
                if (m.path("eval_loss_adapter").isNumber()
                    && m.path("held_out_sha256").isTextual()) {
                  n.putObject("baseline")
                      .put("version", v.version)
                      .put("evalLoss", m.get("eval_loss_adapter").asDouble())
                      .put("heldOutSha256", m.get("held_out_sha256").asText());
                }
              });
    }
    return n;
  }

  private static JsonNode parse(String json) {
    if (json == null) return JSON.missingNode();
    try {
      return JSON.readTree(json);
    } catch (IOException e) {
      return JSON.missingNode();
    }
  }

  @Transactional
  TrainingJob createJob(
      String requestId, Dataset dataset, String adapter, JsonNode hyperParameters) {
    TrainingJob job = new TrainingJob();
    job.id = UUID.randomUUID().toString();
    job.requestId = requestId;
    job.tenantId = dataset.tenantId;
    job.adapterName = adapter;
    job.datasetId = dataset.id;
    job.state = TrainingJob.State.QUEUED;
    job.progress = 0;
    job.hyperParameters = hyperParameters == null ? null : hyperParameters.toString();
    job.createdAt = job.updatedAt = Instant.now();
    db.persist(job);
    return job;
  }

  @Transactional
  public Optional<TrainingJob> job(String id) {
    return Optional.ofNullable(db.find(TrainingJob.class, id));
  }

  /**
   * A schema-checked training-status event; a null field was absent. {@code metrics} is the JSON
   * text, or null when absent or longer than {@link TrainingJob#MAX_METRICS_CHARS}.
   */
  record Status(
      String requestId,
      String state,
      Double progress,
      Integer step,
      Double loss,
      String reason,
      String digest,
      boolean hasMetrics,
      String metrics) {}

  /**
   * Checks one status event against the schema and takes its fields out.
   *
   * @throws IllegalArgumentException naming the schema errors; nothing else for any event
   */
  static Status status(JsonSchema schema, JsonNode s) {
    Set<ValidationMessage> errors = schema.validate(s);
    if (!errors.isEmpty()) throw new IllegalArgumentException("schema: " + errors);
    String metrics = s.has("metrics") ? s.get("metrics").toString() : null;
    return new Status(
        s.get("requestId").asText(),
        s.get("state").asText(),
        s.has("progress") ? s.get("progress").asDouble() : null,
        s.has("step") ? s.get("step").asInt() : null,
        s.has("loss") ? s.get("loss").asDouble() : null,
        s.has("reason") ? truncate(s.get("reason").asText()) : null,
        s.has("digest") ? s.get("digest").asText() : null,
        metrics != null,
        metrics != null && metrics.length() <= TrainingJob.MAX_METRICS_CHARS ? metrics : null);
  }

  /** Applies one status event to its job; events for unknown requests are ignored. */
  @Transactional
  void applyStatus(JsonNode event) {
    Status s = status(statusSchema, event);
    TrainingJob job =
        db
            .createSelectionQuery("from TrainingJob where requestId = ?1", TrainingJob.class)
            .setParameter(1, s.requestId())
            .setMaxResults(1)
            .getResultList()
            .stream()
            .findFirst()
            .orElse(null);
    if (job == null) return;
    TrainingJob.State state = TrainingJob.State.ofWire(s.state());
    if (job.state.isFinal()) return; // final states stay
    job.state = state;
    if (s.progress() != null) job.progress = s.progress();
    if (s.step() != null) job.step = s.step();
    if (s.loss() != null) job.loss = s.loss();
    if (s.reason() != null) job.reason = s.reason();
    if (s.digest() != null) job.digest = s.digest();
    if (s.hasMetrics()) job.metrics = s.metrics();
    if (state.isFinal() && state != TrainingJob.State.FAILED) job.progress = 100;
    job.adapterVersion = versionOf(job);
    job.updatedAt = Instant.now();
  }

  /** Fills in the version once the adapter event of a succeeded job has been consumed. */
  @Transactional
  public void resolveVersion(TrainingJob job) {
    if (job.adapterVersion != null || job.digest == null) return;
    TrainingJob managed = db.find(TrainingJob.class, job.id);
    managed.adapterVersion = job.adapterVersion = versionOf(job);
  }

  /** The registry version holding the job's digest, or null while its event is not consumed yet. */
  private Integer versionOf(TrainingJob job) {
    if (job.digest == null) return null;
    return registry.versions(job.tenantId, job.adapterName).stream()
        .filter(v -> v.digest.equals(job.digest))
        .map(v -> v.version)
        .findFirst()
        .orElse(null);
  }

  private static String truncate(String s) {
    return s.length() <= 2000 ? s : s.substring(0, 2000);
  }

  @PreDestroy
  void stop() {
    if (producer != null) producer.close(Duration.ofSeconds(2));
    if (!running) return;
    running = false;
    loop.close();
  }
}
