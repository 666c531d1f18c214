import os  # added for the tests
import trio_socketserver.sync as socketserver

class RequestHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data = self.request.recv(1024)  # Receive the request
        response = data.upper()  # Transform the request to uppercase
        self.request.sendall(response)  # Send the response back

class UDPServer(socketserver.UDPServer):
    pass

if __name__ == "__main__":
    HOST, PORT = "localhost", int(os.environ.get("EXAMPLE_PORT", "9999"))  # port from the environment
    server = UDPServer((HOST, PORT), RequestHandler)
    print("listening on", server.server_address, flush=True)  # added for the tests
    server.serve_forever()  # Start listening for requests
