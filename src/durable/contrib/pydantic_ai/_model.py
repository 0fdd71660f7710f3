"""The agent's model, each request checkpointed as a step of the durable run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import (
    CompletedStreamedResponse,
    Model,
    ModelRequestParameters,
    StreamedResponse,
)
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from durable.contrib.pydantic_ai import _codec

# (model, messages, settings, parameters) -> the response as stored JSON.
RequestStep = Callable[
    [Model, list[ModelMessage], ModelSettings | None, ModelRequestParameters],
    Awaitable[dict[str, Any]],
]


async def request_model(
    model: Model,
    messages: list[ModelMessage],
    model_settings: ModelSettings | None,
    model_request_parameters: ModelRequestParameters,
) -> dict[str, Any]:
    """The body of a model-request step: one call to the real model."""
    response = await model.request(messages, model_settings, model_request_parameters)
    return _codec.dump_response(response)


class DurableModel(WrapperModel):
    """Wraps the agent's model so that each request is one step of the run.

    On replay the recorded response is returned and the model is not called.
    A streamed request is made as a plain request inside the step, and its
    response is replayed to the stream's consumer as events.
    """

    def __init__(self, wrapped: Model, step: RequestStep) -> None:
        super().__init__(wrapped)
        self._step = step

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        data = await self._step(self.wrapped, messages, model_settings, model_request_parameters)
        return _codec.load_response(data)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        response = await self.request(messages, model_settings, model_request_parameters)
        yield CompletedStreamedResponse(
            response, model_request_parameters=model_request_parameters, replay_events=True
        )
