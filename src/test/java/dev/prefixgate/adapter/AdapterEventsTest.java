package dev.prefixgate.adapter;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.prefixgate.engine.ModelConfig;
import dev.prefixgate.engine.ModelFingerprint;
import dev.prefixgate.engine.PrefixAdapter;
import dev.prefixgate.tenant.Tenants;
import io.quarkus.narayana.jta.QuarkusTransaction;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.restassured.http.ContentType;
import jakarta.inject.Inject;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.awaitility.Awaitility;
import org.hibernate.Session;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Adapter events on a real broker (deploy/local/kafka, or KAFKA_BOOTSTRAP), produced with a plain
 * kafka-clients producer, not through the application.
 */
@QuarkusTest
@TestProfile(AdapterEventsTest.WithKafka.class)
public class AdapterEventsTest {
  public static final String RUN = UUID.randomUUID().toString().substring(0, 8);
  public static final String BOOTSTRAP =
      System.getenv().getOrDefault("KAFKA_BOOTSTRAP", "127.0.0.1:9092");
  // Under the production names' prefixes: the local broker's ACLs are prefix bindings.
  public static final String TOPIC = "prefixgate.adapters.test-" + RUN;
  public static final String DEAD = "prefixgate.dead-letters.test-" + RUN;
  public static final String RETRAIN = "prefixgate.retrain-requests.test-" + RUN;
  public static final String STATUS = "prefixgate.training-status.test-" + RUN;
  static final ObjectMapper JSON = new ObjectMapper();

  public static class WithKafka implements QuarkusTestProfile {
    @Override
    public Map<String, String> getConfigOverrides() {
      return Map.of(
          "prefixgate.kafka.enabled", "true",
          "prefixgate.kafka.bootstrap-servers", BOOTSTRAP,
          "prefixgate.kafka.adapters-topic", TOPIC,
          "prefixgate.kafka.dead-letters-topic", DEAD,
          "prefixgate.kafka.retrain-topic", RETRAIN,
          "prefixgate.kafka.status-topic", STATUS,
          "prefixgate.kafka.max-adapter-bytes", "65536");
    }
  }

  @Inject AdapterRegistry registry;
  @Inject Tenants tenants;
  @Inject Session db;

  /** How many refused events match an HQL condition. */
  long rejected(String where, Object... params) {
    return QuarkusTransaction.requiringNew()
        .call(
            () -> {
              var q =
                  db.createSelectionQuery(
                      "select count(*) from RejectedEvent " + where, Long.class);
              for (int i = 0; i < params.length; i++) q.setParameter(i + 1, params[i]);
              return q.getSingleResult();
            });
  }

  private static KafkaProducer<String, String> producer;

  /**
   * A client login on the local broker (deploy/local/kafka): {@code trainer} may publish adapter
   * events, {@code gateway} may not, {@code stranger} may do nothing at all.
   */
  public static Properties login(String user) {
    Properties p = new Properties();
    p.put("bootstrap.servers", BOOTSTRAP);
    p.put("security.protocol", "SASL_PLAINTEXT");
    p.put("sasl.mechanism", "SCRAM-SHA-512");
    p.put(
        "sasl.jaas.config",
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
            + user
            + "\" password=\"pg-kafka-"
            + user
            + "-local\";");
    return p;
  }

  /** The trainer's producer for every Kafka test class in this JVM; the JVM's exit closes it. */
  static synchronized KafkaProducer<String, String> producer() {
    if (producer == null) {
      Properties p = login("trainer");
      p.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, 4 * 1024 * 1024);
      producer = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    }
    return producer;
  }

  /** Events never create tenants: the tenants these tests publish for exist beforehand. */
  @BeforeEach
  void tenants() {
    for (String t : List.of("k-acme", "k-dup", "k-bad")) tenants.ensure(t, t, null, false);
  }

  static byte[] file(String adapter, String name) throws Exception {
    return Files.readAllBytes(Path.of("trainer/fixtures/adapters", adapter, name));
  }

  public static ObjectNode event(String tenant, String name, String fixture) throws Exception {
    byte[] weights = file(fixture, "adapter_model.safetensors");
    Path model = Path.of("trainer/fixtures/tiny-bloom");
    ObjectNode e = JSON.createObjectNode();
    e.put("eventId", UUID.randomUUID().toString())
        .put("tenant", tenant)
        .put("adapter", name)
        .put("version", 1);
    e.putObject("baseModel")
        .put(
            "fingerprint",
            ModelFingerprint.of(model, ModelConfig.read(model.resolve("config.json"))))
        .put("name", "prefixgate/tiny-bloom-demo");
    e.set("peftConfig", JSON.readTree(file(fixture, "adapter_config.json")));
    e.put("sha256", PrefixAdapter.sha256(weights));
    e.put("safetensors", Base64.getEncoder().encodeToString(weights));
    e.put("source", "test");
    e.put("producer", "adapter-events-test");
    return e;
  }

  /** Index of the case "acme/0" in golden.json: base's cases come first, one per golden prompt. */
  static final int GOLDEN_ACME_0 = goldenIndex("acme/0");

  static int goldenIndex(String id) {
    try {
      JsonNode cases =
          JSON.readTree(Files.readAllBytes(Path.of("trainer/fixtures/golden.json"))).get("cases");
      for (int i = 0; i < cases.size(); i++)
        if (cases.get(i).get("id").asText().equals(id)) return i;
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    throw new IllegalArgumentException("no golden case " + id);
  }

  public static void send(ObjectNode e) throws Exception {
    sendTo(TOPIC, e);
  }

  /**
   * Plays the trainer worker on the training-status topic: one status event for {@code requestId}
   * ({@code digest} only on success), as RetrainTest and the playground's retrain test need it.
   */
  public static void sendStatus(
      String requestId, String state, double progress, double loss, String digest)
      throws Exception {
    ObjectNode s =
        JSON.createObjectNode()
            .put("requestId", requestId)
            .put("state", state)
            .put("progress", progress)
            .put("loss", loss)
            .put("step", 3);
    if (digest != null) s.put("digest", digest);
    sendTo(STATUS, s);
  }

  public static void sendTo(String topic, ObjectNode e) throws Exception {
    String key = e.path("tenant").asText("?") + "/" + e.path("adapter").asText("?");
    producer().send(new ProducerRecord<>(topic, key, e.toString())).get();
  }

  private void awaitVersions(String tenant, String name, int count) {
    Awaitility.await()
        .atMost(Duration.ofSeconds(60))
        .until(() -> registry.versions(tenant, name).size() >= count);
  }

  @Test
  void anEventFromAPlainProducerBecomesServableWithPeftExactOutput() throws Exception {
    send(event("k-acme", "pirate", "acme"));
    awaitVersions("k-acme", "pirate", 1);
    String key =
        given()
            .auth()
            .oauth2("pg-admin-test")
            .post("/admin/tenants/k-acme/keys")
            .then()
            .statusCode(201)
            .extract()
            .path("apiKey");
    String prompt =
        JSON.writeValueAsString(
            JSON.readTree(Files.readAllBytes(Path.of("trainer/fixtures/golden.json")))
                .get("cases")
                .get(GOLDEN_ACME_0)
                .get("prompt")
                .asText());
    List<Integer> ids =
        given()
            .auth()
            .oauth2(key)
            .contentType(ContentType.JSON)
            .body(
                "{\"model\":\"pirate\",\"prompt\":"
                    + prompt
                    + ",\"temperature\":0,\"max_tokens\":32,\"ignore_eos\":true,\"return_token_ids\":true}")
            .post("/v1/completions")
            .then()
            .statusCode(200)
            .extract()
            .jsonPath()
            .getList("choices[0].token_ids", Integer.class);
    List<Integer> golden = new ArrayList<>();
    JSON.readTree(Files.readAllBytes(Path.of("trainer/fixtures/golden.json")))
        .get("cases")
        .get(GOLDEN_ACME_0)
        .get("new_ids")
        .forEach(x -> golden.add(x.asInt()));
    assertEquals(golden, ids);
  }

  @Test
  void duplicatesAndBadEventsGiveOneVersionAndDeadLettersAndTheConsumerGoesOn() throws Exception {
    ObjectNode good = event("k-dup", "a", "initech");
    send(good);
    send(good.deepCopy().put("eventId", "again"));
    ObjectNode badSum = event("k-bad", "sum", "acme").put("sha256", "0".repeat(64));
    ObjectNode badBase = event("k-bad", "base", "acme");
    ((ObjectNode) badBase.get("baseModel")).put("fingerprint", "1".repeat(64));
    ObjectNode badSchema = event("k-bad", "schema", "acme");
    badSchema.remove("sha256");
    byte[] big = new byte[70_000];
    ObjectNode oversize =
        event("k-bad", "big", "acme")
            .put("safetensors", Base64.getEncoder().encodeToString(big))
            .put("sha256", PrefixAdapter.sha256(big));
    byte[] cut = Arrays.copyOf(file("acme", "adapter_model.safetensors"), 1000);
    ObjectNode truncated =
        event("k-bad", "cut", "acme")
            .put("safetensors", Base64.getEncoder().encodeToString(cut))
            .put("sha256", PrefixAdapter.sha256(cut));
    for (ObjectNode e : List.of(badSum, badBase, badSchema, oversize, truncated)) send(e);
    producer().send(new ProducerRecord<>(TOPIC, "k-bad/json", "{not json")).get();
    // Keyed for another adapter: compaction would drop that adapter's latest event.
    producer()
        .send(
            new ProducerRecord<>(
                TOPIC, "k-bad/forged", event("k-dup", "victim", "acme").toString()))
        .get();
    send(event("k-nobody", "a", "acme"));
    send(event("k-dup", "marker", "globex"));
    awaitVersions("k-dup", "marker", 1);
    assertEquals(
        1, registry.versions("k-dup", "a").size(), "a duplicate event must not add a version");
    assertEquals(
        0, registry.versions("k-bad", null).size(), "no rejected event may leave an adapter");

    Map<String, String> reasons = deadLetters(8);
    assertTrue(reasons.get("k-bad/sum").startsWith("checksum mismatch"), reasons.toString());
    assertTrue(reasons.get("k-bad/base").contains("adapter is for base model"), reasons.toString());
    assertTrue(reasons.get("k-bad/schema").contains("sha256"), reasons.toString());
    assertTrue(reasons.get("k-bad/big").contains("over the limit of 65536"), reasons.toString());
    assertTrue(reasons.get("k-bad/cut").contains("adapter_model.safetensors"), reasons.toString());
    assertTrue(reasons.get("k-bad/json").startsWith("not JSON"), reasons.toString());
    assertTrue(reasons.get("k-bad/forged").contains("must be 'k-dup/victim'"), reasons.toString());
    assertEquals(0, registry.versions("k-dup", "victim").size());
    assertTrue(
        reasons.get("k-nobody/a").startsWith("unknown tenant 'k-nobody'"), reasons.toString());
    assertTrue(tenants.find("k-nobody").isEmpty(), "an event must never create a tenant");
    assertEquals(
        8L, rejected("where tenantId is null or tenantId <> ?1", "k-late"), "one row each");
  }

  /**
   * Only the trainer's principal may publish adapter events: the gateway's login, a login with no
   * rights and a client with no login at all are all refused by the broker, so nothing they send
   * reaches the registry.
   */
  @Test
  void producersWithoutTheTrainersLoginCannotPublishAdapterEvents() throws Exception {
    for (String user : List.of("gateway", "stranger")) {
      Properties p = login(user);
      p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 10_000);
      try (KafkaProducer<String, String> forger =
          new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
        ObjectNode e = event("k-acme", "forged-" + user, "acme");
        ExecutionException refused =
            assertThrows(
                ExecutionException.class,
                () ->
                    forger
                        .send(new ProducerRecord<>(TOPIC, "k-acme/forged-" + user, e.toString()))
                        .get());
        assertInstanceOf(TopicAuthorizationException.class, refused.getCause(), user);
      }
    }
    Properties anonymous = new Properties();
    anonymous.put("bootstrap.servers", BOOTSTRAP);
    anonymous.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 3000);
    try (KafkaProducer<String, String> forger =
        new KafkaProducer<>(anonymous, new StringSerializer(), new StringSerializer())) {
      ObjectNode e = event("k-acme", "forged-anonymous", "acme");
      // Without SASL the broker never completes the handshake: the send cannot even start.
      Exception refused =
          assertThrows(
              Exception.class,
              () ->
                  forger
                      .send(new ProducerRecord<>(TOPIC, "k-acme/forged-anonymous", e.toString()))
                      .get());
      Throwable cause = refused instanceof ExecutionException ? refused.getCause() : refused;
      assertInstanceOf(TimeoutException.class, cause, refused.toString());
    }
    // The trainer's event, sent after the forgeries, arrives; none of the forgeries did.
    send(event("k-acme", "after-forgeries", "initech"));
    awaitVersions("k-acme", "after-forgeries", 1);
    for (String forged : List.of("forged-gateway", "forged-stranger", "forged-anonymous")) {
      assertEquals(0, registry.versions("k-acme", forged).size(), forged);
    }
  }

  /**
   * An event for a tenant that does not exist yet is refused, and served once the admin creates the
   * tenant: the consumer replays the compacted topic for it (a new replica's empty database is the
   * same case).
   */
  @Test
  void aTenantCreatedAfterItsAdapterWasPublishedGetsItFromTheTopic() throws Exception {
    send(event("k-late", "tutor", "xuetang"));
    send(event("k-dup", "late-marker", "globex"));
    awaitVersions("k-dup", "late-marker", 1);
    assertTrue(tenants.find("k-late").isEmpty());
    assertEquals(1L, rejected("where tenantId = ?1 and field = ?2", "k-late", "tenant"));
    given()
        .auth()
        .oauth2("pg-admin-test")
        .contentType(ContentType.JSON)
        .body("{\"id\":\"k-late\"}")
        .post("/admin/tenants")
        .then()
        .statusCode(201);
    awaitVersions("k-late", "tutor", 1);
    assertEquals("ACTIVE", registry.versions("k-late", "tutor").get(0).status.name());
    // Only the new tenant's events were read again: nothing else was registered or refused twice.
    assertEquals(1, registry.versions("k-dup", "late-marker").size());
    assertEquals(1L, rejected("where tenantId = ?1 and field = ?2", "k-late", "tenant"));
  }

  /** Dead letters by record key → the reason header. */
  static Map<String, String> deadLetters(int expected) {
    Properties c = login("ops");
    c.put(ConsumerConfig.GROUP_ID_CONFIG, "prefixgate-ops-test-" + UUID.randomUUID());
    c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    Map<String, String> out = new HashMap<>();
    try (KafkaConsumer<byte[], byte[]> consumer =
        new KafkaConsumer<>(c, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      consumer.subscribe(List.of(DEAD));
      long deadline = System.currentTimeMillis() + 60_000;
      while (out.size() < expected && System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
          out.put(
              new String(r.key(), StandardCharsets.UTF_8),
              new String(
                  r.headers().lastHeader("prefixgate.reason").value(), StandardCharsets.UTF_8));
        }
      }
    }
    return out;
  }
}
