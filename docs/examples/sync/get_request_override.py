import os  # added for the tests
import trio_socketserver.sync as socketserver

class EchoRequestHandler(socketserver.BaseRequestHandler):
    def handle(self):
        # Receive data from the client
        data = self.request.recv(1024)

        # Echo the data back to the client
        self.request.sendall(data)

class EchoServer(socketserver.TCPServer):
    def __init__(self, server_address, RequestHandlerClass):
        super().__init__(server_address, RequestHandlerClass)

    def get_request(self):
        # Accept an incoming client connection
        (socket, address) = self.socket.accept()
        return (socket, address)

if __name__ == "__main__":
    # Create the server socket and bind it to the specified port
    server_address = ("localhost", int(os.environ.get("EXAMPLE_PORT", "5000")))  # port from the environment
    server = EchoServer(server_address, EchoRequestHandler)

    # Start the server
    print("listening on", server.server_address, flush=True)  # added for the tests
    server.serve_forever()
