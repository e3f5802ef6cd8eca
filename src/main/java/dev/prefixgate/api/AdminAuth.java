package dev.prefixgate.api;

import dev.prefixgate.PrefixgateConfig;
import jakarta.enterprise.inject.Instance;
import jakarta.inject.Inject;
import jakarta.ws.rs.container.ContainerRequestContext;
import jakarta.ws.rs.core.Response;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import org.jboss.resteasy.reactive.server.ServerRequestFilter;

/**
 * Every {@code /admin/...} request must carry {@code Authorization: Bearer <admin key>}; every
 * {@code /trainer/...} request the trainer workers' own key, which opens nothing else.
 */
public class AdminAuth {
  // Looked up per request: filters are created before runtime configuration mappings exist.
  @Inject Instance<PrefixgateConfig> config;

  @ServerRequestFilter
  public Response check(ContainerRequestContext ctx) {
    String path = ctx.getUriInfo().getPath();
    if (path.startsWith("/trainer")) return trainer(ctx);
    if (!path.startsWith("/admin")) return null;
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
    if (!matches(ctx, expected)) {
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

  private Response trainer(ContainerRequestContext ctx) {
    String expected = config.get().trainer().key().orElse("");
    if (expected.isEmpty()) {
      return refuse(
          new ApiError(
              503,
              "invalid_request_error",
              "trainer_access_disabled",
              null,
              "Trainer access is disabled: set PREFIXGATE_TRAINER_KEY (prefixgate.trainer.key)"));
    }
    if (!matches(ctx, expected)) {
      return refuse(
          new ApiError(
              401,
              "invalid_request_error",
              "invalid_trainer_key",
              null,
              "Missing or invalid trainer key: send 'Authorization: Bearer <trainer key>'."));
    }
    return null;
  }

  /** Constant-time comparison of the bearer token: a key must not leak through timing. */
  private static boolean matches(ContainerRequestContext ctx, String expected) {
    String header = ctx.getHeaderString("Authorization");
    String given =
        header != null && header.regionMatches(true, 0, "Bearer ", 0, 7)
            ? header.substring(7).trim()
            : "";
    return MessageDigest.isEqual(
        given.getBytes(StandardCharsets.UTF_8), expected.getBytes(StandardCharsets.UTF_8));
  }

  private static Response refuse(ApiError e) {
    return Response.status(e.status()).entity(e.json()).type("application/json").build();
  }
}
