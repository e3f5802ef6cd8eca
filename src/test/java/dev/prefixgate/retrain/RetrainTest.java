package dev.prefixgate.retrain;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.prefixgate.adapter.AdapterEventsTest;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.restassured.http.ContentType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.UUID;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.Test;

/**
 * The gateway's half of retraining on a real broker: the request event it publishes, and the job it
 * keeps from training-status events (played here by a plain producer, as a worker would send them).
 */
@QuarkusTest
@TestProfile(AdapterEventsTest.WithKafka.class)
class RetrainTest {
  static final ObjectMapper JSON = new ObjectMapper();
  static final String ADMIN = "pg-admin-test";

  @Test
  void retrainPublishesARequestAndStatusEventsDriveTheJob() throws Exception {
    // Its own tenant: the in-memory test database outlives this Quarkus profile, and the demo
    // tenants' adapters must stay as the other suites expect them.
    given()
        .auth()
        .oauth2(ADMIN)
        .contentType(ContentType.JSON)
        .body("{\"id\":\"k-retrain\"}")
        .post("/admin/tenants")
        .then()
        .statusCode(201);
    byte[] data = Files.readAllBytes(Path.of("trainer/fixtures/datasets/initech.jsonl"));
    String datasetId =
        given()
            .auth()
            .oauth2(ADMIN)
            .contentType("application/x-ndjson")
            .body(data)
            .post("/admin/tenants/k-retrain/datasets")
            .then()
            .statusCode(201)
            .extract()
            .path("id");
    String body =
        "{\"adapter\":\"style\",\"datasetId\":\""
            + datasetId
            + "\",\"hyperParameters\":{\"maxSteps\":5}}";
    JsonNode job =
        JSON.readTree(
            given()
                .auth()
                .oauth2(ADMIN)
                .contentType(ContentType.JSON)
                .body(body)
                .post("/admin/tenants/k-retrain/retrain")
                .then()
                .statusCode(202)
                .body("state", equalTo("queued"))
                .extract()
                .asString());

    JsonNode request = readOne(AdapterEventsTest.RETRAIN, job.get("requestId").asText());
    assertEquals("k-retrain", request.get("tenant").asText());
    assertEquals(datasetId, request.at("/dataset/id").asText());
    assertEquals(
        dev.prefixgate.engine.PrefixAdapter.sha256(data), request.at("/dataset/sha256").asText());
    assertEquals(5, request.at("/hyperParameters/maxSteps").asInt());

    String requestId = job.get("requestId").asText();
    String jobUrl = "/admin/jobs/" + job.get("id").asText();
    AdapterEventsTest.sendStatus(requestId, "running", 50, 0.75, null);
    Awaitility.await()
        .atMost(Duration.ofSeconds(30))
        .until(
            () ->
                "running"
                    .equals(
                        given().auth().oauth2(ADMIN).get(jobUrl).then().extract().path("state")));
    given()
        .auth()
        .oauth2(ADMIN)
        .get(jobUrl)
        .then()
        .body("progress", equalTo(50.0f))
        .body("loss", equalTo(0.75f));

    ObjectNode adapter = AdapterEventsTest.event("k-retrain", "style", "globex");
    adapter.put("requestId", requestId);
    AdapterEventsTest.send(adapter);
    AdapterEventsTest.sendStatus(requestId, "succeeded", 100, 0.5, adapter.get("sha256").asText());
    Awaitility.await()
        .atMost(Duration.ofSeconds(30))
        .until(
            () ->
                Integer.valueOf(1)
                    .equals(
                        given()
                            .auth()
                            .oauth2(ADMIN)
                            .get(jobUrl)
                            .then()
                            .extract()
                            .path("adapterVersion")));
    given().auth().oauth2(ADMIN).get(jobUrl).then().body("state", equalTo("succeeded"));
  }

  @Test
  void badRetrainRequestsAreRefused() {
    given()
        .auth()
        .oauth2(ADMIN)
        .contentType(ContentType.JSON)
        .body("{\"adapter\":\"json\",\"datasetId\":\"nope\"}")
        .post("/admin/tenants/acme/retrain")
        .then()
        .statusCode(404);
    given()
        .auth()
        .oauth2(ADMIN)
        .contentType(ContentType.JSON)
        .body("{\"adapter\":\"Bad Name\",\"datasetId\":\"x\"}")
        .post("/admin/tenants/acme/retrain")
        .then()
        .statusCode(400);
    given().auth().oauth2(ADMIN).get("/admin/jobs/" + UUID.randomUUID()).then().statusCode(404);
  }

  static JsonNode readOne(String topic, String requestId) throws Exception {
    // Read as the trainer reads it: its login, a group under its prefix.
    Properties c = AdapterEventsTest.login("trainer");
    c.put(ConsumerConfig.GROUP_ID_CONFIG, "prefixgate-trainers-test-" + UUID.randomUUID());
    c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    try (KafkaConsumer<String, String> consumer =
        new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer())) {
      consumer.subscribe(List.of(topic));
      long deadline = System.currentTimeMillis() + 30_000;
      while (System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
          JsonNode n = JSON.readTree(r.value());
          if (n.get("requestId").asText().equals(requestId)) return n;
        }
      }
    }
    throw new AssertionError("no retrain request " + requestId + " on " + topic);
  }
}
