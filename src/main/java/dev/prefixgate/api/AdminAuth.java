package dev.prefixgate.api;

import dev.prefixgate.PrefixgateConfig;
import jakarta.enterprise.inject.Instance;
import jakarta.inject.Inject;
import jakarta.ws.rs.container.ContainerRequestContext;
import jakarta.ws.rs.core.Response;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import org.jboss.resteasy.reactive.server.ServerRequestFilter;

/** Every {@code /admin/...} request must carry {@code Authorization: Bearer <admin key>}. */
public class AdminAuth {
  // Looked up per request: filters are created before runtime configuration mappings exist.
  @Inject Instance<PrefixgateConfig> config;

  @ServerRequestFilter
  public Response check(ContainerRequestContext ctx) {
    if (!ctx.getUriInfo().getPath().startsWith("/admin")) return null;
    String expected = config.get().admin().key().orElse("");
    if (expected.isEmpty()) {
      return refuse(
          new ApiError(
              503,
              "invalid_request_error",
              "admin_disabled",
              null,
              "The admin API is disabled: set PREFIXGATE_ADMIN_KEY (prefixgate.admin.key)"));
    }
    String header = ctx.getHeaderString("Authorization");
    String given =
        header != null && header.regionMatches(true, 0, "Bearer ", 0, 7)
            ? header.substring(7).trim()
            : "";
    // Constant-time comparison: the admin key must not leak through timing.
    if (!MessageDigest.isEqual(
        given.getBytes(StandardCharsets.UTF_8), expected.getBytes(StandardCharsets.UTF_8))) {
      return refuse(
          new ApiError(
              401,
              "invalid_request_error",
              "invalid_admin_key",
              null,
              "Missing or invalid admin key: send 'Authorization: Bearer <admin key>'."));
    }
    return null;
  }

  private static Response refuse(ApiError e) {
    return Response.status(e.status()).entity(e.body()).type("application/json").build();
  }
}
