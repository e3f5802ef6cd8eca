package dev.prefixgate.api;

import dev.prefixgate.engine.AdapterFormatException;
import jakarta.ws.rs.WebApplicationException;
import jakarta.ws.rs.core.Response;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.jboss.resteasy.reactive.server.ServerExceptionMapper;

/** Writes every error of the JAX-RS endpoints (admin API) as OpenAI-style error JSON. */
public class ErrorMapper {
  private static final Logger LOG = Logger.getLogger(ErrorMapper.class.getName());

  @ServerExceptionMapper
  public Response api(ApiError e) {
    return Response.status(e.status()).entity(e.body()).type("application/json").build();
  }

  @ServerExceptionMapper
  public Response adapter(AdapterFormatException e) {
    return api(
        new ApiError(400, "invalid_request_error", "invalid_adapter", e.field(), e.getMessage()));
  }

  @ServerExceptionMapper
  public Response web(WebApplicationException e) {
    int status = e.getResponse().getStatus();
    return api(
        new ApiError(
            status,
            status >= 500 ? "server_error" : "invalid_request_error",
            "http_" + status,
            null,
            e.getMessage()));
  }

  @ServerExceptionMapper
  public Response other(RuntimeException e) {
    LOG.log(Level.SEVERE, "admin request failed", e);
    return api(new ApiError(500, "server_error", "internal_error", null, "Internal error: " + e));
  }
}
