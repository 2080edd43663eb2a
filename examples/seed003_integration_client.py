"""Seed 003, "Example: Complete Workflow Creation and Execution" (INTEGRATION_SERVICE_URL)."""

import asyncio
import os
import sys

from servicegrid.clients import ServiceIntegrationClient
from servicegrid.errors import (
    MaxRetriesExceededError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    ValidationError,
)
from servicegrid.runtime import get_request_id


async def create_and_execute_document_workflow():
    client = ServiceIntegrationClient(
        base_url=os.getenv("INTEGRATION_SERVICE_URL", "http://localhost:8005/api")
    )

    try:
        # Register text extraction service
        text_extraction = await client.register_service(
            name="text-extraction",
            description="Extract text from documents",
            endpoint="http://text-extraction-service:8000/api",
            actions=[
                {
                    "name": "extract",
                    "description": "Extract text from a document",
                    "input_schema": {
                        "type": "object",
                        "properties": {
                            "document_url": {
                                "type": "string",
                                "format": "uri",
                                "description": "URL of the document to extract text from",
                            }
                        },
                        "required": ["document_url"],
                    },
                    "output_schema": {
                        "type": "object",
                        "properties": {"text": {"type": "string", "description": "Extracted text"}},
                        "required": ["text"],
                    },
                }
            ],
        )

        print(f"Registered text extraction service with ID: {text_extraction['id']}")

        # Register sentiment analysis service
        sentiment_analysis = await client.register_service(
            name="sentiment-analysis",
            description="Analyze sentiment of text",
            endpoint="http://sentiment-analysis-service:8000/api",
            actions=[
                {
                    "name": "analyze",
                    "description": "Analyze sentiment of text",
                    "input_schema": {
                        "type": "object",
                        "properties": {
                            "text": {"type": "string", "description": "Text to analyze"}
                        },
                        "required": ["text"],
                    },
                    "output_schema": {
                        "type": "object",
                        "properties": {
                            "sentiment": {
                                "type": "string",
                                "description": "Sentiment (positive, negative, neutral)",
                            },
                            "score": {
                                "type": "number",
                                "description": "Sentiment score (-1.0 to 1.0)",
                            },
                        },
                        "required": ["sentiment", "score"],
                    },
                }
            ],
        )

        print(f"Registered sentiment analysis service with ID: {sentiment_analysis['id']}")

        # Create workflow
        workflow = await client.create_workflow(
            name="document-sentiment",
            description="Extract text from a document and analyze sentiment",
            steps=[
                {
                    "id": "extract-text",
                    "service": "text-extraction",
                    "action": "extract",
                    "next": "analyze-sentiment",
                },
                {
                    "id": "analyze-sentiment",
                    "service": "sentiment-analysis",
                    "action": "analyze",
                    "next": None,
                },
            ],
        )

        print(f"Created workflow with ID: {workflow['id']}")

        # Execute workflow
        result = await client.execute_workflow(
            workflow_id=workflow["id"],
            input_data={"document_url": "https://example.com/document.pdf"},
            context={"request_id": get_request_id()},
        )

        print("Workflow execution result:")
        print(f"Sentiment: {result['sentiment']}")
        print(f"Score: {result['score']}")

        return result

    except ValidationError as e:
        print(f"Validation error: {e.validation_errors}")
    except ResourceNotFoundError as e:
        print(f"Resource not found: {e.resource_type} with ID {e.resource_id}")
    except ServiceUnavailableError as e:
        print(f"Service unavailable: {e.service_name}")
    except MaxRetriesExceededError as e:
        print(f"Failed after {e.attempts} attempts: {e.last_error}")
    except Exception as e:
        print(f"Unexpected error: {str(e)}")  # noqa: RUF010


if __name__ == "__main__":
    # exit non-zero when the workflow gave no result (the function printed why)
    sys.exit(0 if asyncio.run(create_and_execute_document_workflow()) else 1)
