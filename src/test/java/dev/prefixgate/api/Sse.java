package dev.prefixgate.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/** A minimal SSE client: POSTs JSON and returns the raw {@code data:} payloads in order. */
final class Sse {
  static final HttpClient CLIENT = HttpClient.newHttpClient();

  record Result(int status, String contentType, List<String> data) {
    List<JsonNode> chunks() {
      List<JsonNode> out = new ArrayList<>();
      ObjectMapper m = new ObjectMapper();
      for (String d : data) {
        if (d.equals("[DONE]")) continue;
        try {
          out.add(m.readTree(d));
        } catch (Exception e) {
          throw new AssertionError("not JSON: " + d, e);
        }
      }
      return out;
    }
  }

  static HttpRequest request(String url, String key, String body) {
    return HttpRequest.newBuilder(URI.create(url))
        .header("Authorization", "Bearer " + key)
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(body))
        .build();
  }

  static Result post(String url, String key, String body) throws Exception {
    HttpResponse<Stream<String>> r =
        CLIENT.send(request(url, key, body), HttpResponse.BodyHandlers.ofLines());
    List<String> data = new ArrayList<>();
    try (Stream<String> lines = r.body()) {
      lines.forEach(
          l -> {
            if (l.startsWith("data: ")) data.add(l.substring(6));
          });
    }
    return new Result(r.statusCode(), r.headers().firstValue("content-type").orElse(""), data);
  }

  private Sse() {}
}
