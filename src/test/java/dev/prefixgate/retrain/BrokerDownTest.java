package dev.prefixgate.retrain;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.quarkus.narayana.jta.QuarkusTransaction;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.restassured.http.ContentType;
import jakarta.inject.Inject;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.hibernate.Session;
import org.junit.jupiter.api.Test;

/** With no broker reachable, serving goes on and retraining answers 503 instead of hanging. */
@QuarkusTest
@TestProfile(BrokerDownTest.NoBroker.class)
class BrokerDownTest {
  @Inject Session db;

  public static class NoBroker implements QuarkusTestProfile {
    @Override
    public Map<String, String> getConfigOverrides() {
      return Map.of(
          "prefixgate.kafka.enabled", "true", "prefixgate.kafka.bootstrap-servers", "127.0.0.1:1");
    }
  }

  @Test
  void servingContinuesAndRetrainIs503() throws Exception {
    given()
        .auth()
        .oauth2("pg-demo-acme")
        .contentType(ContentType.JSON)
        .body("{\"model\":\"pirate\",\"prompt\":\"Hi\",\"temperature\":0,\"max_tokens\":4}")
        .post("/v1/completions")
        .then()
        .statusCode(200);
    byte[] data = Files.readAllBytes(Path.of("trainer/fixtures/datasets/acme.jsonl"));
    String datasetId =
        given()
            .auth()
            .oauth2("pg-admin-test")
            .contentType("application/x-ndjson")
            .body(data)
            .post("/admin/tenants/acme/datasets")
            .then()
            .statusCode(201)
            .extract()
            .path("id");
    long started = System.nanoTime();
    given()
        .auth()
        .oauth2("pg-admin-test")
        .contentType(ContentType.JSON)
        .body("{\"adapter\":\"pirate\",\"datasetId\":\"" + datasetId + "\"}")
        .post("/admin/tenants/acme/retrain")
        .then()
        .statusCode(503)
        .body("error.code", equalTo("broker_unavailable"))
        .body("error.message", containsString("127.0.0.1:1"));
    long jobs =
        QuarkusTransaction.requiringNew()
            .call(
                () ->
                    db.createSelectionQuery(
                            "select count(*) from TrainingJob where tenantId = ?1", Long.class)
                        .setParameter(1, "acme")
                        .getSingleResult());
    assertEquals(0L, jobs, "a refused retrain leaves no job");
    long ms = (System.nanoTime() - started) / 1_000_000;
    System.out.println("retrain refused after " + ms + " ms");
    // Not a performance number: the producer waits at most max.block.ms (5 s) plus its request
    // timeout, so anything near the HTTP client's patience means the call hung.
    org.junit.jupiter.api.Assertions.assertTrue(
        ms < 20_000, "the retrain call hung on the missing broker for " + ms + " ms");
  }
}
