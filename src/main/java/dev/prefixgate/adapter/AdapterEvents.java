package dev.prefixgate.adapter;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.ValidationMessage;
import dev.prefixgate.PrefixgateConfig;
import dev.prefixgate.engine.AdapterFormatException;
import dev.prefixgate.engine.BaseModel;
import dev.prefixgate.engine.PrefixAdapter;
import dev.prefixgate.messaging.EventSchemas;
import dev.prefixgate.messaging.KafkaClients;
import dev.prefixgate.messaging.KafkaLoop;
import dev.prefixgate.tenant.TenantCreated;
import dev.prefixgate.tenant.Tenants;
import io.quarkus.runtime.StartupEvent;
import jakarta.annotation.PreDestroy;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.enterprise.event.TransactionPhase;
import jakarta.inject.Inject;
import jakarta.persistence.PersistenceException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Level;
import java.util.logging.Logger;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Follows the compacted adapter topic: validate (schema, checksum, base-model fingerprint, strict
 * adapter reader) → {@link AdapterRegistry#register} (the same code as an upload, idempotent by
 * digest) → activate per the event's policy. A refused event is recorded and its raw record goes to
 * the dead-letter topic; the consumer always moves on.
 *
 * <p>Each start joins with a fresh consumer group and reads from the beginning, so a replica with
 * an empty database catches up from the compacted topic alone. One daemon thread; the broker being
 * away only delays it (the client reconnects), serving never depends on it.
 */
@ApplicationScoped
public class AdapterEvents {
  private static final Logger LOG = Logger.getLogger(AdapterEvents.class.getName());
  private static final ObjectMapper JSON = new ObjectMapper();

  @Inject PrefixgateConfig config;
  @Inject AdapterRegistry registry;
  @Inject Tenants tenants;
  @Inject BaseModel baseModel;

  private volatile boolean running;
  private KafkaConsumer<byte[], byte[]> consumer;
  private KafkaProducer<byte[], byte[]> deadLetters;
  private KafkaLoop<byte[], byte[]> loop;
  private JsonSchema schema;
  private String fingerprint;
  // Tenants created since the consumer started whose published adapters must be read again:
  // their events were refused while the tenant did not exist. Written by request threads, taken
  // by the consumer thread, which alone owns replayEnd and replaying.
  private final Set<String> pendingReplays = ConcurrentHashMap.newKeySet();
  private final Map<TopicPartition, Long> replayEnd = new HashMap<>();
  private final Set<String> replaying = new HashSet<>();
  private final AtomicLong accepted = new AtomicLong();
  private final AtomicLong rejected = new AtomicLong();

  /** Why an event was refused; {@code field} names the offending part. */
  record Rejection(String field, String reason) {}

  void start(@Observes StartupEvent ignored) throws Exception {
    PrefixgateConfig.Kafka k = config.kafka();
    if (!k.enabled()) return;
    schema = EventSchemas.load("adapter-event");
    fingerprint = baseModel.fingerprint();
    Properties p = KafkaClients.connection(k);
    p.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, messageLimit(k));
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    deadLetters = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
    Properties c = KafkaClients.connection(k);
    c.put(ConsumerConfig.GROUP_ID_CONFIG, "prefixgate-gateway-" + UUID.randomUUID());
    c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    c.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, messageLimit(k));
    c.put(ConsumerConfig.FETCH_MAX_BYTES_CONFIG, messageLimit(k));
    c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 16);
    consumer = new KafkaConsumer<>(c, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    consumer.subscribe(List.of(k.adaptersTopic()));
    running = true;
    loop =
        KafkaLoop.start(
            "prefixgate-adapter-events",
            consumer,
            this::consume,
            new KafkaLoop.Hooks() {
              @Override
              public void onStart() {
                // Here, not at start-up: a missing broker must not delay serving.
                ensureTopics(config.kafka());
              }

              @Override
              public void beforePoll() {
                startReplays();
              }

              @Override
              public void afterPoll() {
                if (!replayEnd.isEmpty()) finishReplays();
              }
            });
    LOG.info(
        "following adapter events on "
            + k.adaptersTopic()
            + " at "
            + k.bootstrapServers()
            + " as "
            + KafkaClients.principal(k));
  }

  /** Adapter and dead-letter topics must carry a whole inline adapter (base64 plus JSON). */
  static int messageLimit(PrefixgateConfig.Kafka k) {
    return (int) Math.min(Integer.MAX_VALUE, (long) k.maxAdapterBytes() * 4 / 3 + 1024 * 1024);
  }

  private void ensureTopics(PrefixgateConfig.Kafka k) {
    Properties p = KafkaClients.connection(k);
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 15000);
    String max = Integer.toString(messageLimit(k));
    List<NewTopic> topics =
        List.of(
            new NewTopic(k.adaptersTopic(), 1, (short) 1)
                .configs(Map.of("cleanup.policy", "compact", "max.message.bytes", max)),
            new NewTopic(k.deadLettersTopic(), 1, (short) 1)
                .configs(Map.of("max.message.bytes", max)),
            new NewTopic(k.retrainTopic(), 3, (short) 1),
            new NewTopic(k.statusTopic(), 1, (short) 1));
    try (Admin admin = Admin.create(p)) {
      var results = admin.createTopics(topics).values();
      for (NewTopic t : topics) {
        try {
          results.get(t.name()).get();
        } catch (java.util.concurrent.ExecutionException e) {
          if (!(e.getCause() instanceof TopicExistsException)) {
            LOG.warning("cannot create topic " + t.name() + ": " + e.getCause());
          }
        }
      }
    } catch (Exception e) {
      // Serving must not depend on the broker: the consumer retries on its own.
      LOG.log(Level.WARNING, "Kafka admin unavailable; topics not checked", e);
    }
  }

  /**
   * A tenant created after its adapters were published (a new replica's empty database, or events
   * that arrived before the admin created the tenant) gets them from the compacted topic: the
   * consumer reads the topic again from the start, for that tenant only.
   */
  void tenantCreated(@Observes(during = TransactionPhase.AFTER_SUCCESS) TenantCreated e) {
    if (!running) return;
    pendingReplays.add(e.tenantId());
    loop.wakeup();
  }

  /** On the consumer thread: rewinds to the start, remembering where normal reading resumes. */
  private void startReplays() {
    if (pendingReplays.isEmpty()) return;
    Set<TopicPartition> parts = consumer.assignment();
    // Not assigned yet: the first poll reads from the start anyway (a new group, earliest).
    if (parts.isEmpty()) return;
    Map<TopicPartition, Long> ends = new HashMap<>();
    for (TopicPartition tp : parts) ends.put(tp, consumer.position(tp)); // may be woken up
    List<String> ids = new ArrayList<>(pendingReplays);
    pendingReplays.removeAll(ids);
    ends.forEach((tp, end) -> replayEnd.merge(tp, end, Math::max));
    replaying.addAll(ids);
    consumer.seekToBeginning(parts);
    LOG.info("replaying adapter events for new tenant(s) " + ids);
  }

  private void consume(ConsumerRecord<byte[], byte[]> r) {
    TopicPartition tp = new TopicPartition(r.topic(), r.partition());
    Long end = replayEnd.get(tp);
    if (end != null && r.offset() < end) {
      // Already read once: only the tenants being replayed see it again.
      if (replaying.contains(tenantOf(r.key()))) handle(r);
      return;
    }
    handle(r);
  }

  private void finishReplays() {
    replayEnd.entrySet().removeIf(e -> consumer.position(e.getKey()) >= e.getValue());
    if (replayEnd.isEmpty()) replaying.clear();
  }

  private static String tenantOf(byte[] key) {
    if (key == null) return "";
    String k = new String(key, StandardCharsets.UTF_8);
    int slash = k.indexOf('/');
    return slash < 0 ? k : k.substring(0, slash);
  }

  private void handle(ConsumerRecord<byte[], byte[]> r) {
    if (r.value() == null) return; // a tombstone: compaction deletes, the registry keeps history
    JsonNode event = null;
    Rejection rejection;
    try {
      event = JSON.readTree(r.value());
      rejection = apply(r.key(), event);
    } catch (Exception e) {
      rejection =
          new Rejection("event", event == null ? "not JSON: " + e.getMessage() : e.toString());
    }
    if (rejection == null) {
      accepted.incrementAndGet();
      return;
    }
    rejected.incrementAndGet();
    LOG.warning(
        "rejected adapter event at "
            + r.topic()
            + "/"
            + r.partition()
            + "@"
            + r.offset()
            + ": "
            + rejection.field()
            + ": "
            + rejection.reason());
    RejectedEvent row = new RejectedEvent();
    if (event != null) {
      row.eventId = text(event, "eventId");
      row.tenantId = text(event, "tenant");
      row.adapterName = text(event, "adapter");
    }
    row.topic = r.topic();
    row.partition = r.partition();
    row.offset = r.offset();
    row.field = truncate(rejection.field(), 200);
    row.reason = truncate(rejection.reason(), 2000);
    try {
      registry.recordRejected(row);
    } catch (Exception e) {
      LOG.log(Level.WARNING, "cannot record the rejected event", e);
    }
    ProducerRecord<byte[], byte[]> dead =
        new ProducerRecord<>(config.kafka().deadLettersTopic(), r.key(), r.value());
    dead.headers()
        .add("prefixgate.reason", rejection.reason().getBytes(StandardCharsets.UTF_8))
        .add("prefixgate.field", rejection.field().getBytes(StandardCharsets.UTF_8))
        .add("prefixgate.source.topic", r.topic().getBytes(StandardCharsets.UTF_8))
        .add(
            "prefixgate.source.partition",
            Integer.toString(r.partition()).getBytes(StandardCharsets.UTF_8))
        .add(
            "prefixgate.source.offset", Long.toString(r.offset()).getBytes(StandardCharsets.UTF_8));
    deadLetters.send(
        dead,
        (m, e) -> {
          if (e != null) LOG.log(Level.WARNING, "dead letter not written", e);
        });
  }

  /**
   * What {@link #check} accepted: the event's tenant, adapter and decoded weights; or, when {@code
   * rejection} is set, why it refused the event.
   */
  record Checked(String tenant, String name, byte[] weights, Rejection rejection) {
    static Checked refused(String field, String reason) {
      return new Checked(null, null, null, new Rejection(field, reason));
    }
  }

  /**
   * The checks that need no database: schema, record key, base64, size, checksum and base-model
   * fingerprint. Never throws for a hostile event: every refusal is a {@link Rejection}.
   */
  static Checked check(
      JsonSchema schema, byte[] key, JsonNode event, long maxAdapterBytes, String fingerprint) {
    Set<ValidationMessage> errors = schema.validate(event);
    if (!errors.isEmpty()) {
      return Checked.refused(
          "schema",
          errors.stream()
              .map(ValidationMessage::getMessage)
              .sorted()
              .collect(Collectors.joining("; ")));
    }
    String tenant = event.get("tenant").asText();
    String name = event.get("adapter").asText();
    // Compaction keeps the last record per key: a record keyed for another adapter (or tenant)
    // would compact that adapter's latest event away and new replicas would never see it.
    String expectedKey = tenant + "/" + name;
    String given = key == null ? null : new String(key, StandardCharsets.UTF_8);
    if (!expectedKey.equals(given)) {
      return Checked.refused(
          "key",
          "record key "
              + (given == null ? "(none)" : "'" + truncate(given, 200) + "'")
              + " must be '"
              + expectedKey
              + "', the event's tenant/adapter");
    }
    byte[] weights;
    try {
      weights = Base64.getDecoder().decode(event.get("safetensors").asText());
    } catch (IllegalArgumentException e) {
      return Checked.refused("safetensors", "not valid base64");
    }
    if (weights.length > maxAdapterBytes) {
      return Checked.refused(
          "safetensors", weights.length + " bytes, over the limit of " + maxAdapterBytes);
    }
    String digest = PrefixAdapter.sha256(weights);
    if (!digest.equals(event.get("sha256").asText())) {
      return Checked.refused(
          "sha256",
          "checksum mismatch: the bytes hash to "
              + digest
              + ", the event says "
              + event.get("sha256").asText());
    }
    String base = event.at("/baseModel/fingerprint").asText();
    if (!base.equals(fingerprint)) {
      return Checked.refused(
          "baseModel.fingerprint",
          "adapter is for base model " + base + ", this gateway serves " + fingerprint);
    }
    return new Checked(tenant, name, weights, null);
  }

  /** Validates and registers one event; returns why it was refused, or null when accepted. */
  Rejection apply(byte[] key, JsonNode event) throws Exception {
    Checked checked = check(schema, key, event, config.kafka().maxAdapterBytes(), fingerprint);
    if (checked.rejection() != null) return checked.rejection();
    String tenant = checked.tenant();
    String name = checked.name();
    byte[] weights = checked.weights();
    // An event is a new version of an adapter of an existing tenant, never a new tenant: who may
    // call the gateway is decided through the admin API, not by whoever can write to a topic.
    if (tenants.find(tenant).isEmpty()) {
      return new Rejection(
          "tenant",
          "unknown tenant '"
              + tenant
              + "': adapter events never create tenants; create it with POST /admin/tenants");
    }
    byte[] adapterConfig = JSON.writeValueAsBytes(event.get("peftConfig"));
    String policy = event.path("activate").asText("always");
    AdapterRegistry.Origin origin =
        new AdapterRegistry.Origin("kafka", event.get("producer").asText());
    for (int attempt = 1; ; attempt++) {
      try {
        boolean activate =
            switch (policy) {
              case "never" -> false;
              case "if-none" -> registry.active(tenant, name).isEmpty();
              default -> true;
            };
        AdapterRegistry.Registered r =
            registry.register(
                tenant,
                name,
                adapterConfig,
                weights,
                baseModel,
                origin,
                activate,
                event.has("metrics") ? event.get("metrics").toString() : null);
        if (r.created()) {
          LOG.info(
              "adapter "
                  + tenant
                  + "/"
                  + name
                  + " v"
                  + r.adapter().version
                  + " from event "
                  + event.path("eventId").asText()
                  + (activate ? " (active)" : ""));
        }
        return null;
      } catch (AdapterFormatException e) {
        return new Rejection(e.field(), e.getMessage());
      } catch (PersistenceException e) {
        // Another replica registered the same digest at the same moment: retrying finds its row.
        if (attempt >= 3) throw e;
      }
    }
  }

  public long accepted() {
    return accepted.get();
  }

  public long rejected() {
    return rejected.get();
  }

  @PreDestroy
  void stop() {
    if (!running) return;
    running = false;
    loop.close();
    deadLetters.close(Duration.ofSeconds(5));
  }

  private static String text(JsonNode n, String field) {
    return n.hasNonNull(field) ? truncate(n.get(field).asText(), 64) : null;
  }

  private static String truncate(String s, int max) {
    return s == null || s.length() <= max ? s : s.substring(0, max);
  }
}
