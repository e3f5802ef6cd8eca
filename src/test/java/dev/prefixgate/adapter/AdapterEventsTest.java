package dev.prefixgate.adapter;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.prefixgate.engine.ModelConfig;
import dev.prefixgate.engine.ModelFingerprint;
import dev.prefixgate.engine.PrefixAdapter;
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
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.awaitility.Awaitility;
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
  public static final String TOPIC = "test.adapters." + RUN;
  public static final String DEAD = "test.dead-letters." + RUN;
  public static final String RETRAIN = "test.retrain." + RUN;
  public static final String STATUS = "test.status." + RUN;
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

  private static KafkaProducer<String, String> producer;

  /** One plain producer for every Kafka test class in this JVM; the JVM's exit closes it. */
  static synchronized KafkaProducer<String, String> producer() {
    if (producer == null) {
      Properties p = new Properties();
      p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
      p.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, 4 * 1024 * 1024);
      producer = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    }
    return producer;
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
    send(event("k-dup", "marker", "globex"));
    awaitVersions("k-dup", "marker", 1);
    assertEquals(
        1, registry.versions("k-dup", "a").size(), "a duplicate event must not add a version");
    assertEquals(
        0, registry.versions("k-bad", null).size(), "no rejected event may leave an adapter");

    Map<String, String> reasons = deadLetters(7);
    assertTrue(reasons.get("k-bad/sum").startsWith("checksum mismatch"), reasons.toString());
    assertTrue(reasons.get("k-bad/base").contains("adapter is for base model"), reasons.toString());
    assertTrue(reasons.get("k-bad/schema").contains("sha256"), reasons.toString());
    assertTrue(reasons.get("k-bad/big").contains("over the limit of 65536"), reasons.toString());
    assertTrue(reasons.get("k-bad/cut").contains("adapter_model.safetensors"), reasons.toString());
    assertTrue(reasons.get("k-bad/json").startsWith("not JSON"), reasons.toString());
    assertTrue(reasons.get("k-bad/forged").contains("must be 'k-dup/victim'"), reasons.toString());
    assertEquals(0, registry.versions("k-dup", "victim").size());
    assertEquals(7L, RejectedEvent.count());
  }

  /** Dead letters by record key → the reason header. */
  static Map<String, String> deadLetters(int expected) {
    Properties c = new Properties();
    c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    c.put(ConsumerConfig.GROUP_ID_CONFIG, "test-" + UUID.randomUUID());
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
