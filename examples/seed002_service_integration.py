"""Seed 002's service-integration example: every client type, discovery, errors, clean-up.

Runs against the users, questions and API gateway services (``make up`` starts them, or
``servicegrid serve users`` and friends), found through discovery: the environment
(``USER_SERVICE_URL``, ``USER_SERVICE_GRPC_TARGET``...), else Consul (``CONSUL_HOST``).

    python examples/seed002_service_integration.py
"""

import asyncio
import uuid

from servicegrid import (
    APIGatewayClient,
    APIGatewayGRPCClient,
    QuestionServiceClient,
    QuestionServiceGRPCClient,
    ResourceNotFoundError,
    ServiceError,
    UserServiceClient,
    UserServiceGRPCClient,
    ValidationError,
    discover_service_async,
)


async def demo_service_discovery() -> None:
    print("== service discovery")
    for name in ("USER_SERVICE", "QUESTION_SERVICE", "API_GATEWAY"):
        url = await discover_service_async(name)
        target = await discover_service_async(name, protocol="grpc")
        print(f"{name}: {url} (gRPC {target})")


async def demo_rest_clients() -> None:
    print("== REST clients")
    users = UserServiceClient()
    questions = QuestionServiceClient()
    gateway = APIGatewayClient()
    try:
        user_data = await users.get_user("user-123")
        print(f"user: {user_data['username']} ({user_data['email']}), {user_data['interests']}")
        mine = await questions.get_user_questions("user-123")
        print(f"questions of user-123: {mine['total']}")
        hits = await questions.search_questions("machine learning", user_id="user-123")
        for hit in hits["items"][:3]:
            print(f"  search hit {hit['score']:.2f}: {hit['question']['title']}")
        proxied = await gateway.proxy_request("user-service", "GET", "/users/user-123")
        print(f"proxied GET /users/user-123: {proxied['status_code']} {proxied['body']['id']}")
        verdict = await gateway.validate_request("example-key", "questions", "read")
        print(f"validate: allowed={verdict['allowed']} ({verdict['reason']})")
        health = await gateway.get_service_health("question-service")
        print(f"question-service health: {health['status']} via {health['backend']}")
        limit = await gateway.check_rate_limit("example-client", "questions")
        print(f"rate limit: allowed={limit['allowed']}, {limit['remaining']} left")
    finally:
        await users.aclose()
        await questions.aclose()
        await gateway.aclose()


async def demo_grpc_clients() -> None:
    print("== gRPC clients")
    users = UserServiceGRPCClient()
    questions = QuestionServiceGRPCClient()
    gateway = APIGatewayGRPCClient()
    try:
        for client in (users, questions, gateway):
            await client.connect()
        user_data = await users.get_user("user-123")
        print(f"user: {user_data['username']} ({user_data['email']})")
        # create, change and delete a question of our own, leaving the data as it was
        question_id = f"q-example-{uuid.uuid4().hex[:8]}"
        created = await questions.create_question(
            "user-123", "How do I call a service over gRPC?", tags=["grpc"], question_id=question_id
        )
        updated = await questions.update_question(created["id"], tags=["grpc", "python"])
        print(f"question {updated['id']}: tags {updated['tags']}")
        await questions.delete_question(created["id"])
        changes = await questions.list_changes(after=0, limit=1000)
        print(f"change feed: {len(changes['changes'])} changes, next_after={changes['next_after']}")
        proxied = await gateway.proxy_request("question-service", "GET", "/questions?per_page=1")
        print(f"proxied over gRPC: {proxied['status_code']}, total {proxied['body']['total']}")
    finally:
        await users.aclose()
        await questions.aclose()
        await gateway.aclose()


async def demo_error_handling() -> None:
    print("== error handling")
    users = UserServiceClient()
    try:
        try:
            await users.get_user("no-such-user")
        except ResourceNotFoundError as error:
            print(f"not found, as expected: {error}")
        try:
            await users.create_user("bad name with spaces", "not-an-email")
        except ValidationError as error:
            print(f"refused, as expected: {error}")
    except ServiceError as error:  # the service down, a timeout, an open circuit...
        print(f"service error: {type(error).__name__}: {error}")
    finally:
        await users.aclose()


async def main() -> None:
    await demo_service_discovery()
    await demo_rest_clients()
    await demo_grpc_clients()
    await demo_error_handling()


if __name__ == "__main__":
    asyncio.run(main())
