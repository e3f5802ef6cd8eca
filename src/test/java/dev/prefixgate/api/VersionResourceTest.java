package dev.prefixgate.api;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.matchesPattern;

import io.quarkus.test.junit.QuarkusTest;
import org.junit.jupiter.api.Test;

@QuarkusTest
class VersionResourceTest {

  @Test
  void servesNameAndVersion() {
    given()
        .when()
        .get("/v1/version")
        .then()
        .statusCode(200)
        .contentType("application/json")
        .body("name", equalTo("prefixgate"))
        .body("version", matchesPattern("\\d+\\.\\d+\\.\\d+.*"));
  }
}
