"""Seed 000, Docling VLM Service, "Client Usage": one PDF, its tables/figures/blocks, a batch.

It reads document.pdf, doc1.pdf, doc2.pdf and doc3.pdf from the current folder, as the seed does.
"""

import asyncio
import os

from servicegrid.clients import DoclingVLMClient
from servicegrid.proto import docling_vlm_service_pb2, docling_vlm_service_pb2_grpc  # noqa: F401


async def main():
    # Initialize client
    docling_client = DoclingVLMClient(
        service_url=os.getenv("DOCLING_VLM_SERVICE_URL", "localhost:50054")
    )

    # Process single PDF
    with open("document.pdf", "rb") as f:
        pdf_content = f.read()

    result = await docling_client.process_pdf(
        pdf_content=pdf_content,
        filename="document.pdf",
        config=docling_vlm_service_pb2.DoclingConfig(
            model_name="gemma3-12b",
            batch_size=1,
            timeout_seconds=300.0,
            extract_tables=True,
            extract_figures=True,
            extract_text_blocks=True,
        ),
    )

    print(f"Document processed: {result.result.metadata.filename}")
    print(f"Pages: {result.result.metadata.page_count}")
    print(f"Processing time: {result.result.metadata.processing_time_ms}ms")

    # Process tables
    for table in result.result.tables:
        print(f"Table on page {table.page_number}: {table.caption}")
        for row in table.rows:
            row_text = " | ".join([cell.text for cell in row.cells])
            print(f"  {row_text}")

    # Process figures
    for figure in result.result.figures:
        print(f"Figure on page {figure.page_number}: {figure.caption}")
        print(f"  Description: {figure.description}")

    # Process text blocks
    for text_block in result.result.text_blocks:
        print(f"Text block ({text_block.type}): {text_block.text[:100]}...")

    # Process batch of PDFs
    pdf_files = ["doc1.pdf", "doc2.pdf", "doc3.pdf"]
    batch_requests = []

    for pdf_file in pdf_files:
        with open(pdf_file, "rb") as f:
            pdf_content = f.read()

        batch_requests.append(
            docling_vlm_service_pb2.ProcessPDFRequest(
                pdf_content=pdf_content,
                filename=pdf_file,
                config=docling_vlm_service_pb2.DoclingConfig(
                    model_name="gemma3-12b", batch_size=3, timeout_seconds=600.0
                ),
            )
        )

    batch_response = await docling_client.process_pdf_batch(
        docling_vlm_service_pb2.ProcessPDFBatchRequest(requests=batch_requests)
    )

    print(f"Batch processing completed: {len(batch_response.responses)} responses")
    for i, response in enumerate(batch_response.responses):
        print(
            f"PDF {i + 1}: {response.result.metadata.filename} - "
            f"{response.result.metadata.page_count} pages"
        )


if __name__ == "__main__":
    asyncio.run(main())
