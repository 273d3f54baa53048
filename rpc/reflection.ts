/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha), so that grpcurl and
 * similar tools can list, describe and call the services with no .proto file
 * at hand. Both versions share one implementation: their messages are identical.
 */
import { create, toBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import type { ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** gRPC status codes used in reflection error responses. */
const NOT_FOUND = 5;
const INVALID_ARGUMENT = 3;
const UNIMPLEMENTED = 12;

type Answer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "listServicesResponse"; value: { service: Array<{ name: string }> } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

type Question =
  | { case: "fileByFilename"; value: string }
  | { case: "fileContainingSymbol"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: "allExtensionNumbersOfType"; value: string }
  | { case: "listServices"; value: string }
  | { case: undefined; value?: undefined };

/** Answers reflection questions about the given services and files, and every file they depend on. */
export function createReflectionIndex(services: DescService[], extraFiles: DescFile[] = []) {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const extensions = new Map<string, Map<number, DescFile>>();
  const addFile = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const type of nestedTypes(file)) {
      symbols.set(type.typeName, file);
      if (type.kind === "service") for (const m of type.methods) symbols.set(`${type.typeName}.${m.name}`, file);
      if (type.kind === "extension") {
        const byNumber = extensions.get(type.extendee.typeName) ?? new Map<number, DescFile>();
        byNumber.set(type.number, file);
        extensions.set(type.extendee.typeName, byNumber);
      }
    }
    file.dependencies.forEach(addFile);
  };
  services.forEach((s) => addFile(s.file));
  extraFiles.forEach(addFile);
  const encoded = new Map<string, Uint8Array>();
  const encode = (file: DescFile) => {
    let bytes = encoded.get(file.proto.name);
    if (!bytes) encoded.set(file.proto.name, (bytes = toBinary(FileDescriptorProtoSchema, file.proto)));
    return bytes;
  };
  /** The file and everything it imports, the file first, each once. */
  const withDependencies = (file: DescFile): Uint8Array[] => {
    const seen = new Set<string>();
    const out: Uint8Array[] = [];
    const walk = (f: DescFile) => {
      if (seen.has(f.proto.name)) return;
      seen.add(f.proto.name);
      out.push(encode(f));
      f.dependencies.forEach(walk);
    };
    walk(file);
    return out;
  };
  const error = (errorCode: number, errorMessage: string): Answer => ({
    case: "errorResponse",
    value: { errorCode, errorMessage },
  });
  const serviceNames = services.map((s) => s.typeName).sort();

  return (question: Question): Answer => {
    switch (question.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: serviceNames.map((name) => ({ name })) } };
      case "fileByFilename": {
        const file = files.get(question.value);
        return file
          ? { case: "fileDescriptorResponse", value: { fileDescriptorProto: withDependencies(file) } }
          : error(NOT_FOUND, `file not found: ${question.value}`);
      }
      case "fileContainingSymbol": {
        const file = symbols.get(question.value.replace(/^\./, ""));
        return file
          ? { case: "fileDescriptorResponse", value: { fileDescriptorProto: withDependencies(file) } }
          : error(NOT_FOUND, `symbol not found: ${question.value}`);
      }
      case "fileContainingExtension": {
        const file = extensions.get(question.value.containingType)?.get(question.value.extensionNumber);
        return file
          ? { case: "fileDescriptorResponse", value: { fileDescriptorProto: withDependencies(file) } }
          : error(NOT_FOUND, `extension not found: ${question.value.containingType}(${question.value.extensionNumber})`);
      }
      case "allExtensionNumbersOfType":
        return symbols.has(question.value)
          ? {
              case: "allExtensionNumbersResponse",
              value: {
                baseTypeName: question.value,
                extensionNumber: [...(extensions.get(question.value)?.keys() ?? [])],
              },
            }
          : error(NOT_FOUND, `type not found: ${question.value}`);
      case undefined:
        return error(INVALID_ARGUMENT, "empty reflection request");
      default:
        return error(UNIMPLEMENTED, "unknown reflection request");
    }
  };
}

/**
 * Registers both reflection versions on the router, describing the given
 * services and extra files (message types that travel outside RPCs, such as
 * bus events and WebSocket frames).
 */
export function registerReflection(router: ConnectRouter, services: DescService[], extraFiles: DescFile[] = []): void {
  const all = [...services, v1.ServerReflection, v1alpha.ServerReflection];
  const answer = createReflectionIndex(all, extraFiles);
  router.service(v1.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) {
        yield create(v1.ServerReflectionResponseSchema, {
          validHost: request.host,
          originalRequest: request,
          messageResponse: answer(request.messageRequest),
        });
      }
    },
  });
  router.service(v1alpha.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) {
        yield create(v1alpha.ServerReflectionResponseSchema, {
          validHost: request.host,
          originalRequest: request,
          messageResponse: answer(request.messageRequest),
        });
      }
    },
  });
}
